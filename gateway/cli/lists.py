"""`mailwarden lists add|remove|show|import`: the local block and allow lists.

Changes go to the database ([store] url) and, when [redis] url is set, every
gateway node is told at once through Redis; nodes without the message still
see the change within [blocklist] list_refresh seconds.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.cli import CliError
from gateway.cli.common import add_config_argument, settings_from
from gateway.cli.progress import Progress, add_quiet_argument
from gateway.cli.when import DURATION, iso, parse_duration
from gateway.config import Settings
from gateway.lists import records as list_records
from gateway.lists.importer import parse_list_file
from gateway.lists.live import notify_sync
from gateway.lists.match import KINDS, LISTS, Entry, normalise_domain, parse_value
from gateway.store.db import create_schema, make_engine


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lists", help="local block and allow lists")
    lsub = parser.add_subparsers(dest="lists_command", required=True, metavar="ACTION")

    add = lsub.add_parser("add", help="block or allow an IP, network, sender, domain or HELO")
    add.add_argument("list", choices=LISTS)
    add.add_argument("value", help="192.0.2.7, 192.0.2.0/24, bob@spam.test, spam.test, ...")
    add.add_argument(
        "--kind",
        choices=KINDS,
        help="what the value is (guessed; HELO must be given as --kind helo)",
    )
    add.add_argument(
        "--domain", default="", help="only for this recipient domain (default: every domain)"
    )
    add.add_argument("--reason", default="", help="why (kept with the entry)")
    add.add_argument("--by", default=None, help="who adds it (default: your user name)")
    add.add_argument("--expires", help="after 12h, 7d, 2w... or at a date (2026-12-31)")
    add.add_argument(
        "--update",
        action="store_true",
        help="the entry may exist: change its reason or expiry (only those given)",
    )
    add_config_argument(add)
    add.set_defaults(func=cmd_add)

    remove = lsub.add_parser("remove", help="remove an entry added by hand, or an import")
    remove.add_argument("list", nargs="?", choices=LISTS)
    remove.add_argument("value", nargs="?")
    remove.add_argument("--kind", choices=KINDS)
    remove.add_argument("--domain", default="")
    remove.add_argument("--source", help="remove every entry of this import instead")
    add_config_argument(remove)
    remove.set_defaults(func=cmd_remove)

    show = lsub.add_parser("show", help="list entries and imports")
    show.add_argument("--list", choices=LISTS)
    show.add_argument("--domain", help="only this domain's entries ('' for global ones)")
    show.add_argument(
        "--source",
        help="the entries of this import (default: hand entries and one line per import)",
    )
    show.add_argument("--all", action="store_true", help="include expired entries")
    show.add_argument("--json", action="store_true")
    add_config_argument(show)
    show.set_defaults(func=cmd_show)

    imp = lsub.add_parser("import", help="load a published list, replacing its last import")
    imp.add_argument("file", type=Path)
    imp.add_argument("--source", required=True, help="name of the list (e.g. spamhaus-drop)")
    imp.add_argument("--list", choices=LISTS, default="block")
    imp.add_argument("--domain", default="")
    imp.add_argument("--by", default=None)
    imp.add_argument("--strict", action="store_true", help="refuse the file if any line is bad")
    add_quiet_argument(imp)
    add_config_argument(imp)
    imp.set_defaults(func=cmd_import)


def _who(value: str | None) -> str:
    return value or os.environ.get("SUDO_USER") or getpass.getuser()


def _engine(settings: Settings):
    engine = make_engine(settings.store.url)
    create_schema(engine)
    return engine


def _domain(settings: Settings, value: str) -> str:
    if not value:
        return ""
    try:
        domain = normalise_domain(value)
    except ValueError as exc:
        raise CliError(f"--domain: {exc}") from None
    if not settings.accepts(domain):
        raise CliError(f"--domain: {domain} is not one of [domains] accept")
    return domain


def parse_expiry(text: str | None, now: datetime) -> datetime | None:
    if not text:
        return None
    if DURATION.match(text.strip().lower()):
        return now + parse_duration(text, "--expires")
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"--expires: {text!r} is neither a duration (12h, 7d, 2w) nor a "
            f"date (2026-12-31 or 2026-12-31T18:00)"
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= now:
        raise CliError(f"--expires: {text} is in the past")
    return when


def _value(value: str, kind: str | None) -> tuple[str, str]:
    try:
        return parse_value(value, kind)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cmd_add(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    now = datetime.now(UTC)
    kind, value = _value(args.value, args.kind)
    entry = Entry(
        list=args.list,
        kind=kind,
        value=value,
        domain=_domain(settings, args.domain),
        reason=args.reason,
        added_by=_who(args.by),
        added_at=now,
        expires_at=parse_expiry(args.expires, now),
    )
    try:
        saved, created = list_records.add_entry(
            _engine(settings), entry, "merge" if args.update else "refuse"
        )
    except list_records.EntryExists as exc:
        kept = exc.entry
        details = [f"added by {kept.added_by}"]
        if kept.added_at:
            details.append(f"at {iso(kept.added_at)}")
        if kept.reason:
            details.append(f"reason {kept.reason!r}")
        if kept.expires_at:
            details.append(f"until {iso(kept.expires_at)}")
        raise CliError(
            f"{args.list} {kept.describe()} exists ({', '.join(details)}); "
            "give --update to change its reason or expiry"
        ) from None
    notify_sync(settings.redis.url, settings.redis.prefix)
    scope = f"for {saved.domain}" if saved.domain else "for every domain"
    until = f" until {iso(saved.expires_at)}" if saved.expires_at else ""
    print(f"{'added' if created else 'updated'}: {args.list} {saved.describe()} {scope}{until}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    engine = _engine(settings)
    if args.source:
        if args.list or args.value:
            raise CliError("give either LIST VALUE or --source NAME, not both")
        removed = list_records.remove_source(engine, args.source)
        notify_sync(settings.redis.url, settings.redis.prefix)
        print(f"removed import {args.source!r} ({removed} entries)")
        return 0
    if not args.list or not args.value:
        raise CliError("give LIST VALUE (e.g. block 192.0.2.7) or --source NAME")
    kind, value = _value(args.value, args.kind)
    domain = _domain(settings, args.domain)
    removed = list_records.remove_entry(engine, args.list, kind, value, domain)
    if removed:
        notify_sync(settings.redis.url, settings.redis.prefix)
        print(f"removed: {args.list} {kind} {value}")
        return 0
    sources = list_records.sources_listing(engine, args.list, kind, value, domain)
    if sources:
        raise CliError(
            f"{value} is not a hand entry; it comes from the import(s) "
            f"{', '.join(sources)}: re-import without it or remove the import "
            f"with --source"
        )
    raise CliError(
        f"{value} is not on the {args.list} list"
        + (f" of {domain}" if domain else " (global; try --domain)")
    )


def _entry_json(entry: Entry) -> dict:
    return {
        "list": entry.list,
        "kind": entry.kind,
        "value": entry.value,
        "domain": entry.domain,
        "reason": entry.reason,
        "added_by": entry.added_by,
        "added_at": iso(entry.added_at) if entry.added_at else None,
        "expires_at": iso(entry.expires_at) if entry.expires_at else None,
        "source": entry.source,
    }


def cmd_show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    engine = _engine(settings)
    now = datetime.now(UTC)
    _, entries = list_records.load_entries(engine)
    source = args.source or ""
    shown = [
        e
        for e in entries
        if e.source == source
        and (args.list is None or e.list == args.list)
        and (args.domain is None or e.domain == args.domain.lower())
        and (args.all or e.active(now))
    ]
    records = [] if args.source else list_records.imports(engine)
    if args.json:
        print(
            json.dumps(
                {
                    "entries": [_entry_json(e) for e in shown],
                    "imports": [
                        {
                            "source": r.source,
                            "list": r.list,
                            "domain": r.domain,
                            "file": r.file,
                            "imported_at": iso(r.imported_at),
                            "imported_by": r.imported_by,
                            "entries": r.entries,
                        }
                        for r in records
                    ],
                },
                indent=2,
            )
        )
        return 0
    if shown:
        print(f"{'LIST':5} {'KIND':13} {'VALUE':40} {'DOMAIN':20} BY ADDED [EXPIRY] [# REASON]")
    for e in shown:
        scope = e.domain or "*"
        expiry = ""
        if e.expires_at:
            expiry = " expired" if not e.active(now) else f" until {iso(e.expires_at)}"
        added = iso(e.added_at) if e.added_at else "?"
        print(
            f"{e.list:5} {e.kind:13} {e.value:40} {scope:20} {e.added_by} {added}{expiry}"
            f"{'  # ' + e.reason if e.reason else ''}"
        )
    for r in records:
        print(
            f"import {r.source}: {r.entries} {r.list} entries"
            f"{' for ' + r.domain if r.domain else ''} from {r.file}, "
            f"{iso(r.imported_at)} by {r.imported_by}"
        )
    if not shown and not records:
        print("(no entries)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    domain = _domain(settings, args.domain)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", args.source):
        raise CliError("--source: use letters, digits, '-', '_' and '.'")
    try:
        text = args.file.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise CliError(f"{args.file}: cannot read: {exc.strerror}") from None
    bar = Progress("import", "read", unit="entries", quiet=args.quiet)
    entries, bad = parse_list_file(args.file, text)
    bar.update(len(entries))
    for line in bad:
        print(f"{args.file}:{line.line}: {line.problem}: {line.text[:80]}", file=sys.stderr)
    if bad and (args.strict or len(bad) > len(entries)):
        why = "--strict" if args.strict else "more bad lines than good ones"
        print(
            f"{args.file}: refused ({why}); the previous import of {args.source!r} stays",
            file=sys.stderr,
        )
        return 1
    if not entries:
        print(
            f"{args.file}: no entries; the previous import of {args.source!r} stays",
            file=sys.stderr,
        )
        return 1
    count = list_records.replace_import(
        _engine(settings), args.source, args.list, domain, entries, str(args.file), _who(args.by)
    )
    bar.close()
    notify_sync(settings.redis.url, settings.redis.prefix)
    print(
        f"imported {count} {args.list} entries as {args.source!r}"
        + (f" for {domain}" if domain else "")
        + (f" ({len(bad)} bad line{'s' if len(bad) != 1 else ''} skipped)" if bad else "")
    )
    return 0
