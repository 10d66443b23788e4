"""`mailwarden eval-av --corpus DIR`: detection and clean rates on labelled mail.

DIR holds virus/ and clean/ (see tests/support/virusmail.py to generate one).
Every message runs through the gateway's pipeline as configured (the
[clamav] section is required); see gateway/evaluation/antivirus.py for what counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json, settings_from
from gateway.cli.progress import Progress, add_quiet_argument
from gateway.evaluation.antivirus import corpus_files, run_eval


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval-av", help="antivirus detection and clean rates on a corpus")
    add_config_argument(parser, required=False)
    parser.add_argument("--corpus", type=Path, required=True, metavar="DIR")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--concurrency", type=int, default=4, metavar="N")
    add_quiet_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.clamav is None:
        raise CliError(f"{args.config or 'settings'}: no [clamav] section: no scanner configured")
    files = corpus_files(args.corpus)
    if not files["virus"] and not files["clean"]:
        raise CliError(f"{args.corpus}: no messages in virus/ or clean/")
    total = len(files["virus"]) + len(files["clean"])
    with Progress("eval-av", "scanned", total=total, quiet=args.quiet) as bar:
        summary = asyncio.run(_run(settings, args.corpus, max(1, args.concurrency), bar.update))
    if args.json:
        print_json(summary)
    else:
        brief = {k: v for k, v in summary.items() if not isinstance(v, list) or k.endswith("ci95")}
        for key, value in brief.items():
            print(f"{key:24} {json.dumps(value)}")
    return 1 if summary["errors"] else 0


async def _run(settings, corpus: Path, concurrency: int, progress) -> dict:
    from gateway.pipeline.assemble import build_pipeline, build_ports

    ports = build_ports(settings, None)
    try:
        return await run_eval(
            build_pipeline(settings, ports), corpus, settings.smtp.hostname, concurrency, progress
        )
    finally:
        if ports.clamd is not None:
            ports.clamd.close()
