"""`mailwarden rescan --since DATE`: retro-detection with today's signatures.

Scans every attachment delivered since DATE (kept by gateway.store.attachments)
again and records each new hit in the ledger's feedback table as a missed
virus (source "rescan"), once per message, so the detection rate counts it.
Attachments older than [clamav] attachment_retention_days are purged first.
Run it daily after freshclam.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from filters.antivirus import classify
from gateway.adapters.clamd import ClamdClient, ScanError
from gateway.cli import CliError
from gateway.cli.common import add_config_argument, print_json
from gateway.cli.progress import Progress, add_quiet_argument
from gateway.cli.when import iso, parse_time
from gateway.config import load_settings
from gateway.store import attachments
from gateway.store.db import create_schema, make_engine


def parse_since(text: str) -> datetime:
    """'2026-11-01', an ISO date-time (naive values are UTC) or a span back: 7d."""
    return parse_time(text, "--since")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rescan", help="rescan kept attachments with current signatures")
    add_config_argument(parser)
    parser.add_argument("--since", required=True, metavar="DATE", help="e.g. 2026-11-01 or 7d")
    parser.add_argument("--json", action="store_true")
    add_quiet_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    since = parse_since(args.since)
    settings = load_settings(args.config)
    if settings.clamav is None:
        raise CliError(f"{args.config}: no [clamav] section: no scanner configured")
    now = datetime.now(UTC)
    engine = make_engine(settings.store.url)
    client = ClamdClient.from_settings(settings.clamav)
    try:
        create_schema(engine)
        refs, blobs = attachments.purge(engine, now, settings.clamav.attachment_retention_days)
        version = client.version_sync()
        hits: list[dict[str, Any]] = []
        missed, scanned, too_large = 0, 0, 0
        bar = Progress("rescan", "rescanned", unit="attachments", quiet=args.quiet)
        for sha in attachments.blobs_to_rescan(engine, since):
            bar.update()
            data = attachments.blob(engine, sha)
            if data is None:
                continue
            result = client.scan_sync(data)
            scanned += 1
            too_large += result.status == "too_large"
            if result.status != "infected" or classify(result.virus or "") != "virus":
                continue
            rows = attachments.record_missed_virus(
                engine, sha, result.virus or "", since, now, version.raw
            )
            messages = list(dict.fromkeys(r["message_id"] for r in rows))
            missed += len(messages)
            hits.append({"sha256": sha, "virus": result.virus, "messages": messages})
        bar.close()
    except ScanError as exc:
        raise CliError(str(exc)) from None
    finally:
        client.close()
        engine.dispose()
    summary = {
        "since": since.isoformat(),
        "signatures": version.raw,
        "purged_references": refs,
        "purged_blobs": blobs,
        "scanned": scanned,
        "too_large": too_large,
        "infected": len(hits),
        "missed_virus_recorded": missed,
        "hits": hits,
    }
    if args.json:
        print_json(summary)
    else:
        print(
            f"rescanned {scanned} attachment(s) since {iso(since)} with {version.raw}: "
            f"{len(hits)} infected, {missed} message(s) recorded as missed virus"
        )
        for hit in hits:
            print(f"  {hit['sha256'][:16]} {hit['virus']}: {', '.join(hit['messages'])}")
    return 0
