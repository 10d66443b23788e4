"""`mailwarden trace QUEUE_ID|MESSAGE_ID|--sender S|--rcpt R [--since WHEN] [--json]`.

The whole life of a mail from the ledger (gateway/report/trace.py does the
querying, so the console shows the same): session, every filter's symbols,
the decision per recipient, each delivery attempt and its reply, quarantine
and feedback; refusals at MAIL/RCPT for a sender or recipient too.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json
from gateway.cli.safe_text import echo
from gateway.cli.when import iso, parse_time
from gateway.config import load_settings
from gateway.report.trace import DEFAULT_LIMIT, TraceQuery, trace
from gateway.store.db import create_schema, make_engine


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("trace", help="the life of a mail from the ledger")
    add_config_argument(parser)
    parser.add_argument("ident", nargs="?", metavar="QUEUE_ID|MESSAGE_ID")
    parser.add_argument("--sender", metavar="ADDRESS", help="envelope sender (MAIL FROM)")
    parser.add_argument("--rcpt", metavar="ADDRESS", help="envelope recipient")
    parser.add_argument("--since", metavar="WHEN", help="2026-11-01, an ISO time, or 2h / 3d")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="messages at most")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO date or time (naive: UTC), or a span back from now: 30m, 2h, 3d, 1w."""
    return parse_time(text, "--since", now)


def run(args: argparse.Namespace) -> int:
    if not (args.ident or args.sender or args.rcpt):
        raise CliError("trace: give a queue id or Message-ID, --sender or --rcpt")
    settings = load_settings(args.config)
    since = parse_since(args.since) if args.since else None
    engine = make_engine(settings.store.url)
    try:
        create_schema(engine)
        found = trace(
            engine, TraceQuery(args.ident, args.sender, args.rcpt, since, max(1, args.limit))
        )
    finally:
        engine.dispose()
    if args.json:
        print_json(found)
    else:
        _print_text(found)
    if not found["messages"] and not found["refusals"]:
        if not args.json:
            print("nothing found")
        return 1
    return 0


def _print_text(found: dict[str, Any]) -> None:
    for life in found["messages"]:
        s = life["session"]
        echo(f"message {life['queue_id']}  {life['message_id'] or '(no Message-ID)'}")
        echo(f"  subject: {life['subject'] or ''}")
        echo(
            f"  session: {s['client_ip']} ({s['client_hostname'] or 'no PTR'}) "
            f"HELO {s['helo'] or '-'} {'TLS' if s['tls'] else 'no TLS'}; node {life['node']}"
        )
        echo(f"  outcome: {life['outcome']}: {life['smtp_reply']}")
        for r in life["recipients"]:
            echo(f"  rcpt {r['rcpt']}: {r['action']} score {r['score']:g}, status {r['status']}")
            for reason in r["reasons"] or []:
                echo(f"      reason: {reason}")
            symbols = ", ".join(
                f"{sym['name']}({sym['score']:g})" for sym in r["symbols"] or [] if sym["score"]
            )
            if symbols:
                echo(f"      symbols: {symbols}")
        if life["viruses"]:
            echo(f"  viruses: {', '.join(life['viruses'])}")
        echo("  timeline:")
        for event in life["timeline"]:
            at = iso(event["at"])
            echo(f"    {at}  {event['what']:<20} {event['text']}")
        echo()
    for f in found["refusals"]:
        echo(
            f"refused {iso(f['at'])} at {f['stage'].upper()} from {f['client_ip']} "
            f"HELO {f['helo'] or '-'} <{f['mail_from'] or ''}>"
            + (f" to <{f['rcpt']}>" if f["rcpt"] else "")
            + f" by {f['source']}: {f['reply']}"
        )
