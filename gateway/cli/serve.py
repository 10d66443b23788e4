"""`mailwarden serve --config FILE`: run the gateway until SIGTERM (SIGHUP reloads)."""

from __future__ import annotations

import argparse
import logging

from gateway.cli.common import add_config_argument
from gateway.config import load_settings
from gateway.monitor import logsetup
from gateway.store.db import create_schema, make_engine


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the SMTP gateway")
    add_config_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    logsetup.configure(settings.log.format, logging.getLogger().level)
    from gateway.app.probes import startup_checks

    if not startup_checks(settings, logging.getLogger("mailwarden.startup")):
        return 1
    check_schema(settings.store.url)  # before any worker starts: one clear refusal
    if settings.smtp.processes > 1:
        from gateway.app.workers import supervise

        return supervise(
            settings, settings.smtp.processes, logging.getLogger().level, config=args.config
        )
    from gateway.app.run import run_gateway

    run_gateway(settings, config=args.config)
    return 0


def check_schema(url: str) -> None:
    """Refuse (SchemaMismatch, naming `mailwarden db upgrade`) unless the database is at
    the code's revision; an empty one is created."""
    engine = make_engine(url)
    try:
        create_schema(engine)
    finally:
        engine.dispose()
