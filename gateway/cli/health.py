"""`mailwarden health`: does this node's SMTP listener greet? For HEALTHCHECK and monitors.

Unlike `check-config`, which asks the parts the gateway needs, this asks the gateway
itself (the `[smtp] listen` address, loopback for a wildcard bind): exit 0 when it
greets with 220, 1 when not, one line either way.
"""

from __future__ import annotations

import argparse
import asyncio

from gateway.cli.common import add_config_argument, print_json, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("health", help="does this node's SMTP listener answer (exit 0/1)")
    add_config_argument(parser)
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.app.probes import probe_self

    result = asyncio.run(probe_self(settings_from(args), timeout=args.timeout))
    if args.json:
        print_json(result.as_json())
    else:
        state = "ok" if result.ok else "FAILED"
        print(f"gateway {result.target}: {state}: {result.detail}")
    return 0 if result.ok else 1
