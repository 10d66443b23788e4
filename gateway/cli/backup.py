"""`mailwarden backup --out FILE` and `mailwarden restore FILE`: the configuration.

Policies, lists, thresholds, rules, users (gateway.store.backup.CONFIG_TABLES), not
the mail: the ledger and quarantine are backed up with pg_dump (docs/deploy.md).
Restore goes into an empty database only, and refuses any other with exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json, settings_from
from gateway.store import backup
from gateway.store.db import create_schema, make_engine


def register(sub: argparse._SubParsersAction) -> None:
    out = sub.add_parser("backup", help="write the configuration (not the mail) to one file")
    out.add_argument("--out", type=Path, required=True, metavar="FILE")
    _store_arguments(out)
    out.set_defaults(func=run_backup)

    back = sub.add_parser("restore", help="read a backup into an empty database")
    back.add_argument("file", type=Path, metavar="FILE")
    _store_arguments(back)
    back.set_defaults(func=run_restore)


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser, required=False)
    parser.add_argument("--url", metavar="URL", help="the database (default: [store] url)")
    parser.add_argument("--json", action="store_true")


def _engine(args: argparse.Namespace):
    url = args.url or settings_from(args).store.url
    engine = make_engine(url)
    create_schema(engine)  # an empty database is created at the code's revision
    return engine


def _show(args: argparse.Namespace, verb: str, where: str, summary: backup.Summary) -> None:
    if args.json:
        print_json({verb: where, "schema_revision": summary.revision, "rows": summary.rows})
        return
    counts = ", ".join(f"{name} {count}" for name, count in summary.rows.items())
    print(f"{verb} {where} (schema {summary.revision}): {counts}")


def run_backup(args: argparse.Namespace) -> int:
    engine = _engine(args)
    try:
        summary = backup.write(engine, args.out)
    except OSError as exc:
        raise CliError(f"{args.out}: cannot write: {exc.strerror}") from None
    finally:
        engine.dispose()
    _show(args, "wrote", str(args.out), summary)
    return 0


def run_restore(args: argparse.Namespace) -> int:
    try:
        data = backup.read(args.file)
    except backup.BackupError as exc:
        raise CliError(str(exc)) from None
    engine = _engine(args)
    try:
        summary = backup.restore(engine, data, str(args.file))
    except backup.BackupError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    _show(args, "restored", str(args.file), summary)
    return 0
