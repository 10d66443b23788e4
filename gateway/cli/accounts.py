"""`mailwarden accounts suspend|restore|passwd|list|show`: outbound sending accounts.

A suspended account's mail is refused at MAIL (`[outbound] suspended_reply`) until it
is restored. Accounts are also suspended automatically for spam, a virus or their rate
(gateway.smtp.outbound_guard); every change is recorded with who and why. An account
with a password may log in on the submission port ([outbound] submission_listen):

    printf '%s\\n' "$PW" | mailwarden accounts passwd alice@example.org --password-stdin
    mailwarden accounts passwd alice@example.org --no-login       # may no longer log in
"""

from __future__ import annotations

import argparse
import logging
import sys

from gateway.actions import accounts as account_actions
from gateway.actions.common import ActionError, Actor
from gateway.adapters.redis import publish_sync
from gateway.cli import CliError
from gateway.cli.common import acting_user, add_config_argument, print_json, settings_from
from gateway.smtp.outbound_guard import channel
from gateway.store import accounts
from gateway.store.db import create_schema, make_engine

log = logging.getLogger("mailwarden.accounts")


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
    passwd = verbs.add_parser(
        "passwd", help="the password for SMTP AUTH on the submission port (on standard input)"
    )
    passwd.add_argument("address", metavar="ADDRESS")
    how = passwd.add_mutually_exclusive_group(required=True)
    how.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    how.add_argument("--no-login", action="store_true", help="remove the password")
    passwd.add_argument("--by", default=None, help="who (default: your user name)")
    add_config_argument(passwd)
    passwd.set_defaults(func=run_passwd)
    listing = verbs.add_parser("list", help="suspended accounts (--all: every account)")
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
    actor = Actor.cli(acting_user(args.by))
    settings = settings_from(args)
    engine = _engine(args)
    try:
        act = account_actions.suspend if args.verb == "suspend" else account_actions.restore
        changed = act(engine, actor, args.address, args.reason)
    except ActionError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    address = _address(args.address)
    if not changed:
        state = "suspended" if args.verb == "suspend" else "not suspended"
        raise CliError(f"{address} is already {state}")
    # every node forgets its cached answer at once (else within [outbound] suspension_cache)
    publish_sync(settings.redis.url, channel(settings.redis.prefix), address, "accounts", log)
    done = "suspended" if args.verb == "suspend" else "restored"
    print(f"{done}: {address} (by {actor.name}: {args.reason})")
    return 0


def run_passwd(args: argparse.Namespace) -> int:
    password = None
    if args.password_stdin:
        text = sys.stdin.readline()
        if not text:
            raise CliError("--password-stdin: nothing on standard input")
        password = text.rstrip("\r\n")
    actor = Actor.cli(acting_user(args.by))
    engine = _engine(args)
    try:
        created = account_actions.set_password(engine, actor, args.address, password)
    except ActionError as exc:
        raise CliError(f"accounts passwd: {exc}") from None
    finally:
        engine.dispose()
    address = _address(args.address)
    what = "may no longer log in" if password is None else "password set"
    print(f"{address}: {what}{' (new account)' if created else ''}")
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
    print(f"{'ADDRESS':{width}}  {'STATE':9}  {'LOGIN':5}  {'SINCE':25}  {'BY':16}  REASON")
    for a in found:
        state = "suspended" if a.suspended else "active"
        login = "yes" if a.has_password else "no"
        since = a.changed_at.isoformat(timespec="seconds")
        print(
            f"{a.address:{width}}  {state:9}  {login:5}  {since:25}  {a.changed_by:16}  {a.reason}"
        )
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
