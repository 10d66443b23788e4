"""`mailwarden web --config FILE [--listen HOST:PORT]`: the console alone, without SMTP."""

from __future__ import annotations

import argparse
import asyncio
import logging

from gateway.cli import CliError
from gateway.cli.common import add_config_argument
from gateway.config import load_settings
from gateway.monitor import logsetup


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("web", help="serve the web console and JSON API")
    add_config_argument(parser)
    parser.add_argument("--listen", metavar="HOST:PORT", help="default: [web] listen")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    logsetup.configure(settings.log.format, logging.getLogger().level)
    listen = args.listen or settings.web.listen
    if not listen:
        raise CliError(f"{args.config}: set [web] listen (or give --listen HOST:PORT)")
    from gateway.web.server import build_server

    server = build_server(settings, listen)
    asyncio.run(server.serve())
    return 0
