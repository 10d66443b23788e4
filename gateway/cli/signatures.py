"""`mailwarden signatures`: clamd's engine and signature database, and their age.

Service agreements promise signatures updated at least weekly. This asks clamd
(VERSION) what it runs and exits 1 with a warning when the database is older
than --max-age-days (7) or its date is unknown (only local signatures
loaded): usable from cron or a monitoring check. Exit 2: clamd unreachable.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from gateway.adapters.clamd import ClamdClient, ScanError
from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json, settings_from
from gateway.cli.when import iso


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("signatures", help="clamd engine and signature database age")
    add_config_argument(parser, required=False)
    parser.add_argument("--max-age-days", type=float, default=7.0, metavar="N")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.clamav is None:
        raise CliError(f"{args.config or 'settings'}: no [clamav] section: no scanner configured")
    client = ClamdClient.from_settings(settings.clamav)
    try:
        version = client.version_sync()
    except ScanError as exc:
        raise CliError(str(exc)) from None
    finally:
        client.close()
    now = datetime.now().astimezone()
    age = version.age_days(now)
    if age is None:
        warning = "database date unknown: only local signatures are loaded (run freshclam)"
    elif age > args.max_age_days:
        warning = (
            f"the virus database is {age:.1f} days old (over {args.max_age_days:g}): update it"
        )
    else:
        warning = None
    if args.json:
        print_json(
            {
                "engine": version.engine,
                "db_version": version.db_version,
                "db_date": version.db_date.isoformat() if version.db_date else None,
                "age_days": None if age is None else round(age, 2),
                "max_age_days": args.max_age_days,
                "fresh": warning is None,
                "warning": warning,
                "version": version.raw,
            }
        )
    else:
        print(f"engine:    ClamAV {version.engine}")
        if version.db_version is None or version.db_date is None:
            print("database:  unknown version and date")
        else:
            print(
                f"database:  version {version.db_version}, built "
                f"{iso(version.db_date)} ({age:.1f} days ago)"
            )
        if warning:
            print(f"mailwarden: warning: {warning}", file=sys.stderr)
    return 1 if warning else 0
