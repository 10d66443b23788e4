"""`mailwarden report --month YYYY-MM`: which promises of the agreement were kept.

Per domain and overall (or one domain with --domain), each metric with its value,
95% interval, numerator, denominator, guarantee and status (met / missed / not
enough data), as text, JSON or one self-contained HTML page.
"""

from __future__ import annotations

import argparse
import json
import sys

from gateway.cli.common import add_config_argument
from gateway.config import load_settings
from gateway.store.db import create_schema, make_engine


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="the monthly service-agreement report")
    add_config_argument(parser)
    parser.add_argument("--month", required=True, metavar="YYYY-MM")
    parser.add_argument("--domain", metavar="D", help="only this domain")
    parser.add_argument("--profile", metavar="NAME", help="guarantee profile for every domain")
    parser.add_argument("--format", choices=("text", "json", "html"), default="text")
    parser.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.report.build import build_report

    settings = load_settings(args.config)
    engine = make_engine(settings.store.url)
    try:
        create_schema(engine)
        report = build_report(engine, settings, args.month, args.domain, args.profile)
    finally:
        engine.dispose()
    text = render(report, args.format)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def render(report: dict, fmt: str) -> str:
    if fmt == "json":
        from gateway.cli.safe_text import json_text

        return json_text(json.dumps(report, indent=2, ensure_ascii=False)) + "\n"
    if fmt == "html":
        from gateway.report.render_html import render_html

        return render_html(report)
    from gateway.report.render_text import render_text

    return render_text(report)
