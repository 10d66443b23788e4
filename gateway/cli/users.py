"""`mailwarden users add|remove|passwd|list`: the console's users and their domains.

    printf '%s\\n' "$PW" | mailwarden users add ann --role abuse-staff --domain example.com \\
        --password-stdin --config FILE
    mailwarden users passwd ann --password-stdin --config FILE
    mailwarden users remove ann --config FILE
    mailwarden users list [--json] --config FILE

Passwords are read from standard input only (never from the command line, where
`ps` shows them); every change is written to the audit log with --by (default: the
login name).
"""

from __future__ import annotations

import argparse
import sys

from gateway.actions import users as user_actions
from gateway.actions.common import ActionError, Actor
from gateway.cli import CliError
from gateway.cli.common import acting_user, add_config_argument, print_json
from gateway.config import load_settings
from gateway.store import users
from gateway.store.db import create_schema, make_engine


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("users", help="console users, roles and domains")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    add = verbs.add_parser("add", help="a new user (password on standard input)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=users.ROLES)
    add.add_argument(
        "--domain", action="append", default=[], metavar="D", help="a domain they see (repeat)"
    )
    passwd = verbs.add_parser("passwd", help="a new password (on standard input)")
    passwd.add_argument("name")
    for verb in (add, passwd):
        verb.add_argument(
            "--password-stdin", action="store_true", required=True, help="read it from stdin"
        )
    remove = verbs.add_parser("remove", help="remove a user and end their sessions")
    remove.add_argument("name")
    lst = verbs.add_parser("list", help="every user, role and domains")
    lst.add_argument("--json", action="store_true")
    for verb in (add, passwd, remove, lst):
        add_config_argument(verb)
        verb.add_argument("--by", metavar="WHO", help="who makes the change (audit log)")
    parser.set_defaults(func=run)


def _password() -> str:
    text = sys.stdin.readline()
    if not text:
        raise CliError("--password-stdin: nothing on standard input")
    return text.rstrip("\r\n")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    engine = make_engine(settings.store.url)
    try:
        create_schema(engine)
        actor = Actor.cli(acting_user(args.by))
        try:
            return _VERBS[args.verb](engine, actor, args)
        except (ActionError, users.UserError) as exc:
            raise CliError(f"users {args.verb}: {exc}") from None
    finally:
        engine.dispose()


def _add(engine, actor: Actor, args: argparse.Namespace) -> int:
    user = user_actions.add_user(engine, actor, args.name, args.role, args.domain, _password())
    where = ", ".join(user.domains) if user.domains else "every domain"
    print(f"{user.name}: {user.role} ({where})")
    return 0


def _passwd(engine, actor: Actor, args: argparse.Namespace) -> int:
    user_actions.change_password(engine, actor, args.name, _password())
    print(f"{args.name}: password changed; their sessions have ended")
    return 0


def _remove(engine, actor: Actor, args: argparse.Namespace) -> int:
    user_actions.remove_user(engine, actor, args.name)
    print(f"{args.name}: removed")
    return 0


def _list(engine, actor: Actor, args: argparse.Namespace) -> int:
    found = users.list_users(engine)
    if args.json:
        print_json([u.as_json() for u in found])
        return 0
    print(f"{'NAME':20} {'ROLE':12} DOMAINS")
    for u in found:
        print(f"{u.name:20} {u.role:12} {', '.join(u.domains) or '(all)'}")
    return 0


_VERBS = {"add": _add, "passwd": _passwd, "remove": _remove, "list": _list}
