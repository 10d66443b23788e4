"""`mailwarden feedback spam|ham|virus ID`: say what a mail really was.

ID is our queue id or the mail's Message-ID. The label goes into the ledger once
per recipient (all of them, or --rcpt), with who (--by) and when; a later label
overrides an earlier one in the report, and both stay in the audit trail, which
`mailwarden feedback history ID` prints.
"""

from __future__ import annotations

import argparse
import getpass

from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json
from gateway.cli.when import iso
from gateway.config import load_settings
from gateway.store import feedback
from gateway.store.db import create_schema, make_engine


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("feedback", help="record that a mail was spam, ham or a virus")
    add_config_argument(parser)
    parser.add_argument("label", choices=(*feedback.LABELS, "history"), help="what it was")
    parser.add_argument("id", metavar="QUEUE_ID|MESSAGE_ID")
    parser.add_argument(
        "--rcpt", action="append", metavar="ADDRESS", help="only this recipient (repeatable)"
    )
    parser.add_argument("--by", metavar="WHO", help="who says so (default: the login name)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    engine = make_engine(settings.store.url)
    try:
        create_schema(engine)
        with engine.begin() as conn:
            message_id = feedback.find_message(conn, args.id)
            if message_id is None:
                raise CliError(f"{args.id}: no mail with this queue id or Message-ID")
            if args.label == "history":
                rows = feedback.history(engine, message_id)
                _print_history(message_id, rows, args.json)
                return 0
            try:
                result = feedback.add_feedback(
                    conn,
                    message_id,
                    args.label,
                    source="cli",
                    actor=args.by or getpass.getuser(),
                    rcpts=args.rcpt,
                )
            except feedback.FeedbackError as exc:
                raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    if args.json:
        print_json(result.as_json())
    else:
        for row in result.recorded:
            print(f"{message_id} <{row['rcpt']}>: {args.label} ({row['kind']})")
        for rcpt in result.duplicates:
            print(f"{message_id} <{rcpt}>: already recorded, nothing added")
    return 0


def _print_history(message_id: str, rows: list[dict], as_json: bool) -> None:
    if as_json:
        print_json([{k: v for k, v in r.items() if k != "message_id"} for r in rows])
        return
    if not rows:
        print(f"{message_id}: no feedback")
    for r in rows:
        print(
            f"{iso(r['created_at'])} {r['rcpt'] or '(all)'}: {r['kind']} "
            f"by {r['actor'] or '-'} via {r['source']}"
        )
