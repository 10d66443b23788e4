"""`mailwarden selfcheck`: are the gateway's own sending addresses on a blocklist?

Outbound mail leaves from `[outbound] sending_addresses`; a listing there means the
internet refuses our users' mail. Each address is looked up in every configured
`[[dnsbl]]` zone through the gateway's DNS adapter. Exit 0: listed nowhere; 1: listed
somewhere, or a zone could not be asked (each said on its own line); 2: nothing to check.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json, settings_from
from gateway.config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "selfcheck", help="look up our own sending addresses in the configured DNS blocklists"
    )
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


async def check(settings: Settings) -> list[dict[str, Any]]:
    """One row per (address, zone): listed with which meanings, not listed, or failed."""
    from filters.blocklist.dnsbl import ZoneQuerier, interpret, reversed_ip
    from gateway.adapters import Ports
    from gateway.adapters.dns import DnsError, Resolver

    querier = ZoneQuerier(settings, Ports(dns=Resolver(settings.dns)))
    rows = []
    for address in settings.outbound.sending_addresses:
        target = reversed_ip(address)
        for zone in settings.dnsbl:
            row: dict[str, Any] = {"address": address, "zone": zone.zone}
            try:
                answer = await querier.ask(zone, target or "")
            except DnsError as exc:
                rows.append({**row, "state": "failed", "detail": str(exc)})
                continue
            listings = interpret(zone, answer)
            if listings:
                meanings = "; ".join(
                    f"{item.meaning} ({', '.join(item.codes)})" for item in listings
                )
                rows.append({**row, "state": "listed", "detail": meanings})
            else:
                rows.append({**row, "state": "not listed", "detail": ""})
    return rows


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not settings.outbound.sending_addresses:
        raise CliError("nothing to check: set [outbound] sending_addresses (our public IPs)")
    if not settings.dnsbl:
        raise CliError("nothing to check: no [[dnsbl]] zone is configured")
    rows = asyncio.run(check(settings))
    if args.json:
        print_json(rows)
    else:
        width = max(len(r["address"]) for r in rows)
        zone_width = max(len(r["zone"]) for r in rows)
        print(f"{'ADDRESS':{width}}  {'ZONE':{zone_width}}  {'STATE':10}  DETAIL")
        for r in rows:
            print(f"{r['address']:{width}}  {r['zone']:{zone_width}}  {r['state']:10}  "
                  f"{r['detail']}".rstrip())  # fmt: skip
        listed = [r for r in rows if r["state"] == "listed"]
        for r in listed:
            print(f"{r['address']} is listed in {r['zone']}: {r['detail']}")
        if not listed and all(r["state"] == "not listed" for r in rows):
            print("listed nowhere")
    return 0 if all(r["state"] == "not listed" for r in rows) else 1
