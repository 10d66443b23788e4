"""`mailwarden accounts suspend|restore|list|show`: sending accounts of outbound mail.

A suspended account's mail is refused at MAIL (`[outbound] suspended_reply`) until it
is restored. Accounts are also suspended automatically for spam or for their rate
(gateway.smtp.outbound_guard); every change is recorded with who and why.
"""

from __future__ import annotations

import argparse
import getpass

from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json, settings_from
from gateway.store import accounts
from gateway.store.db import create_schema, make_engine


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("accounts", help="suspend or restore outbound sending accounts")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, text in (("suspend", "refuse the account's mail"), ("restore", "let it send")):
        verb = verbs.add_parser(name, help=text)
        verb.add_argument("address", metavar="ADDRESS")
        verb.add_argument("--reason", required=True, help="why (kept with the event)")
        verb.add_argument("--by", default=None, help="who (default: your user name)")
        add_config_argument(verb)
        verb.set_defaults(func=run_change)
    listing = verbs.add_parser("list", help="suspended accounts (--all: restored ones too)")
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--json", action="store_true")
    add_config_argument(listing)
    listing.set_defaults(func=run_list)
    show = verbs.add_parser("show", help="an account's suspensions and restorations")
    show.add_argument("address", metavar="ADDRESS")
    show.add_argument("--json", action="store_true")
    add_config_argument(show)
    show.set_defaults(func=run_show)


def _engine(args: argparse.Namespace):
    engine = make_engine(settings_from(args).store.url)
    create_schema(engine)
    return engine


def _address(text: str) -> str:
    try:
        return accounts.normalise(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def run_change(args: argparse.Namespace) -> int:
    address = _address(args.address)
    if not args.reason.strip() or not args.reason.isprintable():
        raise CliError("--reason: say why in printable text (it is shown in SMTP replies)")
    by = args.by or getpass.getuser()
    engine = _engine(args)
    try:
        if args.verb == "suspend":
            changed = accounts.suspend(engine, address, args.reason, by)
        else:
            changed = accounts.restore(engine, address, args.reason, by)
    finally:
        engine.dispose()
    if not changed:
        state = "suspended" if args.verb == "suspend" else "not suspended"
        raise CliError(f"{address} is already {state}")
    done = "suspended" if args.verb == "suspend" else "restored"
    print(f"{done}: {address} (by {by}: {args.reason})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    engine = _engine(args)
    try:
        found = accounts.listing(engine, everyone=args.all)
    finally:
        engine.dispose()
    if args.json:
        print_json([a.__dict__ | {"changed_at": a.changed_at.isoformat()} for a in found])
        return 0
    if not found:
        print("no suspended account" if not args.all else "no account")
        return 0
    width = max(len("ADDRESS"), *(len(a.address) for a in found))
    print(f"{'ADDRESS':{width}}  {'STATE':9}  {'SINCE':25}  {'BY':16}  REASON")
    for a in found:
        state = "suspended" if a.suspended else "restored"
        since = a.changed_at.isoformat(timespec="seconds")
        print(f"{a.address:{width}}  {state:9}  {since:25}  {a.changed_by:16}  {a.reason}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    address = _address(args.address)
    engine = _engine(args)
    try:
        events = accounts.history(engine, address)
    finally:
        engine.dispose()
    if args.json:
        print_json(events)
        return 0
    if not events:
        print(f"{address}: never suspended")
        return 0
    for e in events:
        print(f"{e['at'].isoformat(timespec='seconds')}  {e['action']:8}  {e['by']}: {e['reason']}")
    return 0
