"""The node's heartbeat: "I am accepting mail", every 30 s, into the shared database.

Each beat also says whether the next hop answered an SMTP greeting (connect,
read the 220, QUIT: a clean session in the protected server's log) and which
signature database clamd runs. The report turns beats into availability
minutes and signature ages (gateway/report/sla.py). With each beat the node also
replaces its row in node_status (clamd, Redis, its queue's counts and oldest jobs, as
the delivery scheduler holds them: no spool file is read for it), which the
console's node and queue pages show for every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.adapters.clamd import ClamdClient, ScanError
from gateway.config import Settings, parse_host_port
from gateway.store import availability, node_status, queue_view
from gateway.store.db import Database
from gateway.store.node_status import SNAPSHOT_JOBS

# (limit) -> the queue's counts and its `limit` oldest jobs as rows (gateway.store.queue_view)
QueueSnapshot = Callable[[int], tuple[dict[str, Any], list[dict[str, Any]]]]

log = logging.getLogger(__name__)


def _json_dates(signatures: dict[str, Any] | None) -> dict[str, Any] | None:
    if signatures is None:
        return None
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in signatures.items()}


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


async def redis_state(redis: Any) -> str | None:
    if redis is None:
        return None
    try:
        async with asyncio.timeout(5):
            await redis.ping()
    except Exception:  # noqa: BLE001 - redis-py raises many kinds
        return "failed"
    return "ok"


def _state(value: bool | None) -> str | None:
    return None if value is None else ("ok" if value else "failed")


async def run(
    db: Database,
    node: str,
    settings: Settings,
    clamd: ClamdClient | None,
    redis: Any = None,
    queue: QueueSnapshot | None = None,
) -> None:
    """Beat every [report] heartbeat_interval seconds until cancelled; `queue` gives
    the queue's counts and oldest jobs (the delivery scheduler's view)."""
    cfg = settings.report
    host, port = parse_host_port(settings.delivery.next_hop)
    started = datetime.now(UTC)
    while True:
        try:
            ok = await probe_next_hop(host, port, cfg.probe_timeout) if cfg.probe_next_hop else None
            signatures = await signatures_of(clamd)
            now = datetime.now(UTC)
            await db.write(availability.beat, node, now, ok, signatures)
            counts, jobs = (queue_view.summary([]), []) if queue is None else queue(SNAPSHOT_JOBS)
            status: dict[str, Any] = {
                "updated_at": now,
                "started_at": started,
                "clamd": None if clamd is None else _state(signatures is not None),
                "redis": await redis_state(redis),
                "next_hop": _state(ok),
                "signatures": _json_dates(signatures),
                "queue": counts,
                "jobs": jobs,
            }
            await db.write(functools.partial(node_status.report, node=node, **status))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("heartbeat failed; the next one retries")
        await asyncio.sleep(cfg.heartbeat_interval)
