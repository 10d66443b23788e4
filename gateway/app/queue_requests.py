"""This node's share of the queue actions asked on other nodes' consoles.

The console that writes a request row (gateway/actions/queue.py) publishes the
node's name on a Redis channel; the node named reads the requests addressed to it
in the shared database (gateway/store/queue_requests.py) at once, writes each as a
control request in its own spool (gateway/store/queue_control.py, named by the
row's id, so writing it again after a crash replaces it), wakes its delivery
scheduler, and once the scheduler has answered, writes the answer back to the row.
Without Redis, or while it is down, a poll every [delivery] request_refresh seconds
finds the requests all the same (gateway.adapters.redis.follow), as rules and lists
are followed; no node reads the table every second any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.adapters.redis import follow
from gateway.store import queue_control, queue_requests
from gateway.store.db import Database
from gateway.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ANSWER_POLL_SECONDS = 0.2  # while a request handed to the spool waits for its answer


async def apply_once(
    db: Database, node: str, spool_root: Path, handed: Callable[[], None] | None = None
) -> int:
    """Hand on new requests and write back the answers that came; how many requests
    are still waiting for their answer. `handed` is called after handing any on."""
    waiting = 0
    new = False
    for row in await db.run(queue_requests.open_for, node):
        answer = await asyncio.to_thread(queue_control.answer_of, spool_root, row["id"])
        if answer is not None:
            await db.write(queue_requests.mark_done, row["id"], answer["ok"], answer["message"])
            await asyncio.to_thread(queue_control.forget, spool_root, row["id"])
            log.info(
                "queue request %s by %s: %s", row["id"], row["requested_by"], answer["message"]
            )
            continue
        waiting += 1
        if row["state"] == queue_requests.PENDING:
            op, job, by = row["op"], row["job"], row["requested_by"]
            await asyncio.to_thread(queue_control.submit, spool_root, op, job, by, row["id"])
            await db.write(queue_requests.mark_taken, row["id"])
            new = True
    if new and handed is not None:
        handed()
    return waiting


async def run(
    db: Database,
    node: str,
    spool_root: Path,
    redis: Any = None,
    prefix: str = "",
    refresh: float = 5.0,
    handed: Callable[[], None] | None = None,
) -> None:
    """Until cancelled: a round at each notice naming this node and every `refresh`
    seconds, and every ANSWER_POLL_SECONDS while a request waits for its answer. A
    failed round (database away) is logged and retried."""
    wake = asyncio.Event()

    async def notice() -> None:
        wake.set()

    async def rounds() -> None:
        waiting = 1  # a first round at start: requests left while the node was down
        while True:
            if not waiting:
                await wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ANSWER_POLL_SECONDS):
                        await wake.wait()
            wake.clear()
            try:
                waiting = await apply_once(db, node, spool_root, handed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("queue requests: round failed; the next one retries")
                waiting = 0

    follower = follow(
        redis,
        queue_requests.channel(prefix),
        notice,
        refresh,
        "queue requests",
        log,
        wanted=lambda data: data == node,
    )
    tasks = [
        asyncio.create_task(rounds(), name="queue-requests:rounds"),
        asyncio.create_task(follower, name="queue-requests:follow"),
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        await cancel_and_wait(tasks)
