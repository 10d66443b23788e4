"""Periodic clean-up of what the store keeps for a limited time.

Held quarantine copies, the attachments kept for `rescan` and answered queue
requests would otherwise grow without bound. Every node runs the sweep; the deletes
are idempotent, so several nodes sweeping the same database do no harm.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from gateway.config import Settings
from gateway.store import attachments, availability, quarantine, queue_requests

log = logging.getLogger(__name__)

SWEEP_SECONDS = 3600.0


def sweep(engine: Engine, settings: Settings, now: datetime) -> dict[str, int]:
    """One pass: expired quarantine items, then attachments past their retention."""
    done = {"quarantine_items": quarantine.purge(engine, now, settings.quarantine.retention_days)}
    done["heartbeats"] = availability.purge(engine, now)
    done["queue_requests"] = queue_requests.purge(engine, now)
    if settings.clamav is not None:
        refs, blobs = attachments.purge(engine, now, settings.clamav.attachment_retention_days)
        done.update(attachment_references=refs, attachment_blobs=blobs)
    return done


async def run(engine: Engine, settings: Settings, every: float = SWEEP_SECONDS) -> None:
    """Sweep at start and then every `every` seconds until cancelled."""
    while True:
        try:
            done = await asyncio.to_thread(sweep, engine, settings, datetime.now(UTC))
            if any(done.values()):
                log.info("housekeeping: purged %s", done)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("housekeeping sweep failed; the next one retries")
        await asyncio.sleep(every)
