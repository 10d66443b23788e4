"""`mailwarden quarantine list|show|export|release|delete|confirm-spam|purge`: held mail.

`show` prints headers and the MIME structure (`--json`: the item with its full
verdict from the ledger); HTML is never rendered. `export ID --out FILE.eml` writes
the original bytes. Release, delete and confirm-spam are the console's actions
(gateway/actions/quarantine.py), recorded with --by in the audit log.
"""

from __future__ import annotations

import argparse
import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.actions import quarantine as actions
from gateway.actions.common import ActionError, Actor
from gateway.cli import CliError
from gateway.cli.common import acting_user, add_config_argument, print_json
from gateway.cli.safe_text import echo
from gateway.cli.when import human_duration, iso, parse_duration
from gateway.config import Settings, load_settings
from gateway.lists.live import notify_sync
from gateway.store import quarantine
from gateway.store.db import Database
from gateway.store.quarantine_query import Filters


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("quarantine", help="review, release or delete held mail")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    lst = verbs.add_parser("list", help="held items, newest first")
    add_config_argument(lst)
    lst.add_argument("--domain", help="only this recipient domain")
    lst.add_argument("--status", default=quarantine.HELD, help="held (default), released, any")
    lst.add_argument("--kind", help="spam, virus, policy, rejected, virus_original")
    lst.add_argument("--sender", help="sender contains this text")
    lst.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    lst.add_argument("--json", action="store_true")
    show = verbs.add_parser("show", help="headers and structure of one item")
    show.add_argument("--json", action="store_true", help="the item and its full verdict")
    export = verbs.add_parser("export", help="write the original message to a file")
    export.add_argument("--out", type=Path, required=True, metavar="FILE.eml")
    release = verbs.add_parser("release", help="deliver an item to its recipients")
    release.add_argument(
        "--not-false-positive",
        action="store_true",
        help="release without recording that the verdict was wrong",
    )
    delete = verbs.add_parser("delete", help="discard an item")
    confirm = verbs.add_parser("confirm-spam", help="record that the held mail was spam")
    confirm.add_argument("--block", choices=actions.BLOCKS, help="also block it for the domain")
    for p in (show, export, release, delete, confirm):
        add_config_argument(p)
        p.add_argument("item", metavar="ID")
    for p in (release, delete, confirm):
        p.add_argument("--by", metavar="WHO", help="who decides (audit log; default: login)")
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
    except ActionError as exc:
        raise CliError(str(exc)) from None
    finally:
        db.close()


def _actor(args: argparse.Namespace) -> Actor:
    return Actor.cli(acting_user(getattr(args, "by", None)))


def _list(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    status = None if args.status in ("any", "") else args.status
    filters = Filters(domain=args.domain, status=status, kind=args.kind, sender=args.sender)
    items = actions.list_page(db.engine, _actor(args), filters, None, args.limit).items
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
    actor = _actor(args)
    if args.json:
        print_json(actions.verdict(db.engine, actor, args.item))
        return 0
    item = actions.visible_item(db.engine, actor, args.item)
    raw = actions.original(db.engine, actor, args.item)
    print_json(item)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        for value in msg.get_all(name, []):
            echo(f"{name}: {value}")
    print("structure:")
    for part in msg.walk():
        filename = part.get_filename()
        echo(f"  {part.get_content_type()}" + (f"  name={filename!r}" if filename else ""))
    return 0


def _export(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    raw = actions.original(db.engine, _actor(args), args.item)
    try:
        args.out.write_bytes(raw)
    except OSError as exc:
        raise CliError(f"{args.out}: {exc.strerror}") from None
    print(f"{args.item}: {len(raw)} bytes written to {args.out}")
    return 0


def _release(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    done = actions.release(
        db.engine, _actor(args), args.item, false_positive=not args.not_false_positive
    )
    note = " (recorded as a false positive)" if done["false_positive"] else ""
    print(f"{args.item}: release requested{note}; a running gateway delivers it within seconds")
    return 0


def _delete(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    actions.delete(db.engine, _actor(args), args.item)
    print(f"{args.item}: deleted")
    return 0


def _confirm(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    done = actions.confirm_spam(
        db.engine,
        _actor(args),
        args.item,
        block=args.block,
        lists_changed=lambda: notify_sync(settings.redis.url, settings.redis.prefix),
    )
    print(f"{args.item}: confirmed as spam")
    if "blocked" in done:
        print(f"blocked {done['blocked']['kind']} {done['blocked']['value']} for its domain")
    return 0


def _purge(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    if args.older_than is not None:
        age = parse_duration(args.older_than, "--older-than", bare_unit="d")
    else:
        age = timedelta(days=settings.quarantine.retention_days)
    count = quarantine.purge(db.engine, datetime.now(UTC), age.total_seconds() / 86400)
    print(f"{count} item(s) older than {human_duration(age)} purged")
    return 0


_VERBS = {
    "list": _list,
    "show": _show,
    "export": _export,
    "release": _release,
    "delete": _delete,
    "confirm-spam": _confirm,
    "purge": _purge,
}
