"""`mailwarden quarantine list|show|release|delete|purge`: review held mail.

`show` prints headers and the MIME structure only; HTML is never rendered.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import getpass
from datetime import UTC, datetime, timedelta

from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json
from gateway.cli.safe_text import echo
from gateway.cli.when import human_duration, iso, parse_duration
from gateway.config import Settings, load_settings
from gateway.store import quarantine
from gateway.store.db import Database


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("quarantine", help="review, release or delete held mail")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    lst = verbs.add_parser("list", help="held items, newest first")
    add_config_argument(lst)
    lst.add_argument("--domain", help="only this recipient domain")
    lst.add_argument("--status", default=quarantine.HELD, help="held (default), released...")
    lst.add_argument("--json", action="store_true")
    for verb, text in (
        ("show", "headers and structure of one item"),
        ("release", "deliver an item to its recipients"),
        ("delete", "discard an item"),
    ):
        p = verbs.add_parser(verb, help=text)
        add_config_argument(p)
        p.add_argument("item", metavar="ID")
        if verb != "show":
            p.add_argument("--actor", default=getpass.getuser(), help="who decides (logged)")
    purge = verbs.add_parser("purge", help="remove items older than the retention")
    add_config_argument(purge)
    purge.add_argument(
        "--older-than",
        metavar="AGE",
        help="7d, 12h, 30m (a bare number is days); default [quarantine] retention_days "
        "(the gateway purges hourly itself)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    db = Database(settings.store.url)
    try:
        return _VERBS[args.verb](db, settings, args)
    finally:
        db.close()


def _list(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    items = quarantine.list_items(db.engine, args.domain, args.status or None)
    if args.json:
        print_json(items)
        return 0
    if items:
        echo(f"{'ID':28} {'CREATED':25} {'KIND':14} {'DOMAIN':20} RECIPIENTS  REASON")
    for it in items:
        echo(
            f"{it['id']:28} {iso(it['created_at'])} {it['kind']:14} {it['domain']:20} "
            f"{', '.join(it['rcpts'])}  {it['reason'] or ''}"
        )
    echo(f"{len(items)} item(s)")
    return 0


def _show(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    item = quarantine.get(db.engine, args.item)
    raw = quarantine.original(db.engine, args.item)
    if item is None or raw is None:
        raise CliError(f"{args.item}: no such quarantine item")
    print_json({k: v for k, v in item.items()})
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        for value in msg.get_all(name, []):
            echo(f"{name}: {value}")
    print("structure:")
    for part in msg.walk():
        filename = part.get_filename()
        echo(f"  {part.get_content_type()}" + (f"  name={filename!r}" if filename else ""))
    return 0


def _release(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    if not quarantine.request_release(db.engine, args.item, args.actor):
        raise CliError(f"{args.item}: not held (unknown, already released or deleted)")
    print(f"{args.item}: release requested; a running gateway delivers it within seconds")
    return 0


def _delete(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    if not quarantine.discard(db.engine, args.item, args.actor):
        raise CliError(f"{args.item}: not held (unknown, released or already deleted)")
    print(f"{args.item}: deleted")
    return 0


def _purge(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    if args.older_than is not None:
        age = parse_duration(args.older_than, "--older-than", bare_unit="d")
    else:
        age = timedelta(days=settings.quarantine.retention_days)
    count = quarantine.purge(db.engine, datetime.now(UTC), age.total_seconds() / 86400)
    print(f"{count} item(s) older than {human_duration(age)} purged")
    return 0


_VERBS = {"list": _list, "show": _show, "release": _release, "delete": _delete, "purge": _purge}
