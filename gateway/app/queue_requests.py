"""This node's share of the queue actions asked on other nodes' consoles.

Every POLL_SECONDS the node reads the requests addressed to it in the shared
database (gateway/store/queue_requests.py), writes each as a control request in its
own spool (gateway/store/queue_control.py, named by the row's id, so writing it
again after a crash replaces it), and once the delivery scheduler has answered,
writes the answer back to the row.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from gateway.store import queue_control, queue_requests
from gateway.store.db import Database

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


async def apply_once(db: Database, node: str, spool_root: Path) -> int:
    """Hand on new requests and write back the answers that came; how many were answered."""
    answered = 0
    for row in await db.run(queue_requests.open_for, node):
        answer = await asyncio.to_thread(queue_control.answer_of, spool_root, row["id"])
        if answer is not None:
            await db.write(queue_requests.mark_done, row["id"], answer["ok"], answer["message"])
            await asyncio.to_thread(queue_control.forget, spool_root, row["id"])
            log.info(
                "queue request %s by %s: %s", row["id"], row["requested_by"], answer["message"]
            )
            answered += 1
        elif row["state"] == queue_requests.PENDING:
            op, job, by = row["op"], row["job"], row["requested_by"]
            await asyncio.to_thread(queue_control.submit, spool_root, op, job, by, row["id"])
            await db.write(queue_requests.mark_taken, row["id"])
    return answered


async def run(db: Database, node: str, spool_root: Path) -> None:
    """Poll until cancelled; a failed round (database away) is logged and retried."""
    while True:
        try:
            await apply_once(db, node, spool_root)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("queue requests: round failed; the next one retries")
        await asyncio.sleep(POLL_SECONDS)
