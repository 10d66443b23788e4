"""`mailwarden db upgrade|current|history|revision`: the database schema's revisions.

`upgrade` is the only command that changes a schema; nodes refuse to start on a
database at another revision than their code's and name this command.
"""

from __future__ import annotations

import argparse

from gateway.cli.common import add_config_argument, print_json, settings_from
from gateway.store import schema
from gateway.store.db import make_engine


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("db", help="database schema: upgrade, current revision, history")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    upgrade = verbs.add_parser("upgrade", help="run the migrations up to this release's schema")
    _store_arguments(upgrade)
    upgrade.add_argument(
        "--to", default="head", metavar="REVISION", help="stop at this revision (default: head)"
    )
    upgrade.set_defaults(func=run_upgrade)

    current = verbs.add_parser("current", help="the revision the database is at")
    _store_arguments(current)
    current.add_argument("--json", action="store_true")
    current.set_defaults(func=run_current)

    history = verbs.add_parser("history", help="every revision, oldest first")
    _store_arguments(history, optional=True)
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=run_history)

    revision = verbs.add_parser(
        "revision", help="(developers) write the next revision from the tables' metadata"
    )
    revision.add_argument("-m", "--message", required=True, help="what the revision changes")
    revision.set_defaults(func=run_revision)


def _store_arguments(parser: argparse.ArgumentParser, optional: bool = False) -> None:
    add_config_argument(parser, required=False)
    parser.add_argument(
        "--url", metavar="URL", help="the database URL (default: [store] url of --config)"
    )
    parser.set_defaults(store_optional=optional)


def _url(args: argparse.Namespace) -> str | None:
    if args.url:
        return args.url
    if args.config or not args.store_optional:
        return settings_from(args).store.url
    return None


def run_upgrade(args: argparse.Namespace) -> int:
    engine = make_engine(_url(args) or "")
    try:
        before, after = schema.upgrade(engine, args.to)
    finally:
        engine.dispose()
    shown = engine.url.render_as_string(hide_password=True)
    if before.empty:
        print(f"{shown}: created at {after}")
    elif before.revision is None:
        print(f"{shown}: made before migrations, counted as {schema.BASELINE}, now at {after}")
    elif before.revision == after:
        print(f"{shown}: already at {after}")
    else:
        print(f"{shown}: upgraded from {before.revision} to {after}")
    return 0


def run_current(args: argparse.Namespace) -> int:
    engine = make_engine(_url(args) or "")
    try:
        found = schema.current(engine)
    finally:
        engine.dispose()
    if args.json:
        print_json(
            {
                "revision": found.revision,
                "effective": found.effective,
                "empty": found.empty,
                "head": schema.head(),
                "at_head": found.revision == schema.head(),
                "description": schema.describe(found),
            }
        )
    else:
        print(schema.describe(found))
    return 0 if found.revision == schema.head() else 1


def run_history(args: argparse.Namespace) -> int:
    at: str | None = None
    url = _url(args)
    if url:
        engine = make_engine(url)
        try:
            at = schema.current(engine).effective
        finally:
            engine.dispose()
    revisions = list(reversed(list(schema.scripts().walk_revisions())))
    if args.json:
        print_json(
            [
                {
                    "revision": script.revision,
                    "down_revision": script.down_revision,
                    "doc": script.doc,
                    "head": script.revision == schema.head(),
                    "current": script.revision == at,
                }
                for script in revisions
            ]
        )
        return 0
    for script in revisions:
        marks = []
        if script.revision == schema.head():
            marks.append("head")
        if script.revision == at:
            marks.append("current")
        mark = f" ({', '.join(marks)})" if marks else ""
        print(f"{script.revision}{mark}: {script.doc}")
    return 0


def run_revision(args: argparse.Namespace) -> int:
    path = schema.new_revision(args.message)
    print(f"wrote {path}: review it, then run the migration tests")
    return 0
