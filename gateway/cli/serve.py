"""`mailwarden serve --config FILE`: run the gateway until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from gateway.cli.common import add_config_argument
from gateway.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the SMTP gateway")
    add_config_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.server import serve

    settings = load_settings(args.config)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(settings))
    return 0


def _loop_factory():
    """uvloop when installed: the event loop itself is a quarter of the gateway's CPU."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
