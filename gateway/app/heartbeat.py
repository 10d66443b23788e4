"""The node's heartbeat: "I am accepting mail", every 30 s, into the shared database.

Each beat also says whether the next hop answered an SMTP greeting (connect,
read the 220, QUIT: a clean session in the protected server's log) and which
signature database clamd runs. The report turns beats into availability
minutes and signature ages (gateway/report/sla.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from gateway.adapters.clamd import ClamdClient, ScanError
from gateway.config import Settings, parse_host_port
from gateway.store import availability
from gateway.store.db import Database

log = logging.getLogger(__name__)


async def probe_next_hop(host: str, port: int, timeout: float) -> bool:
    """True when the next hop greets with 220 within `timeout` seconds.

    asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
    that arrives as its awaitable completes, and the heartbeat then beat on after
    SIGTERM, holding `serve` in Gateway.stop() for ever."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            greeting = await reader.readline()
            if not greeting.startswith(b"220"):
                return False
            # a multi-line greeting ends with "220 "; read on until it does
            while greeting[3:4] == b"-":
                greeting = await reader.readline()
            writer.write(b"QUIT\r\n")
            await writer.drain()
            with contextlib.suppress(OSError):
                await reader.readline()
        return True
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()  # not awaited: a cancelled probe must end at once


async def signatures_of(clamd: ClamdClient | None) -> dict[str, Any] | None:
    if clamd is None:
        return None
    try:
        version = await clamd.version(max_age=0)
    except ScanError:
        return None
    return {"version": version.raw, "db_version": version.db_version, "db_date": version.db_date}


async def run(db: Database, node: str, settings: Settings, clamd: ClamdClient | None) -> None:
    """Beat every [report] heartbeat_interval seconds until cancelled."""
    cfg = settings.report
    host, port = parse_host_port(settings.delivery.next_hop)
    while True:
        try:
            ok = await probe_next_hop(host, port, cfg.probe_timeout) if cfg.probe_next_hop else None
            signatures = await signatures_of(clamd)
            await db.write(availability.beat, node, datetime.now(UTC), ok, signatures)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("heartbeat failed; the next one retries")
        await asyncio.sleep(cfg.heartbeat_interval)
