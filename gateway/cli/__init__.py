"""The `mailwarden` command: one subcommand per module in this package.

Each command module has `register(subparsers)` that adds its parser and sets
`func`; `func(args) -> int` is the exit code. Operator errors (bad config, bad
file, a database at another schema revision) are raised as `CliError`, `ConfigError`
or `SchemaMismatch` and printed as one line: exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from gateway.config import ConfigError
from gateway.store.schema import SchemaMismatch

COMMANDS: list[str] = [
    # one line per command module; keep alphabetical to ease merges
    "db",
    "eval",
    "eval_av",
    "feedback",
    "lists",
    "policy",
    "quarantine",
    "queue",
    "report",
    "rescan",
    "rules",
    "scan",
    "serve",
    "signatures",
    "trace",
    "train",
]


class CliError(Exception):
    """An operator-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailwarden", description="Anti-spam and antivirus SMTP gateway."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"gateway.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiosmtpd logs every command at INFO: only worth it when asked for twice
    logging.getLogger("mail.log").setLevel(logging.WARNING if args.verbose < 2 else logging.DEBUG)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, CliError, SchemaMismatch) as exc:
        print(f"mailwarden: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `mailwarden ... | head`: the reader has gone, nothing to say
        sys.stderr.close()
        return 0
