"""What waits in the spool, as rows: one reader for `mailwarden queue`, the console and
the heartbeat (which reports each node's queue to the shared database)."""

from __future__ import annotations

import heapq
import time
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.store.spool import Job, Spool
from gateway.store.spool_layout import all_spool_dirs


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def state(job: Job, busy: Collection[str] = ()) -> str:
    """held, deferred (tried, waiting for its next attempt) or active (not tried yet,
    or `busy`: an attempt under way)."""
    if job.meta.get("held"):
        return "held"
    return "deferred" if job.attempts and job.id not in busy else "active"


def row(spool: Spool, job: Job, now: float, busy: Collection[str] = ()) -> dict[str, Any]:
    return {
        "id": job.id,
        "queue_id": job.queue_id,
        "state": state(job, busy),
        "kind": job.kind,
        "received_at": iso(job.received_at),
        "age_seconds": round(now - job.received_at, 1),
        "size": spool.size_of(job.id),
        "from": job.mail_from,
        "pending": [r.rcpt for r in job.pending],
        "attempts": job.attempts,
        "next_attempt_in": round(max(0.0, job.next_attempt - now), 1),
        "last_error": job.last_error,
        "held": job.meta.get("held"),
    }


def spools(root: Path) -> list[Spool]:
    return [Spool(d) for d in all_spool_dirs(Path(root))]


def rows(root: Path, now: float | None = None) -> list[dict[str, Any]]:
    """Every job under the spool root (every worker's directory), oldest first."""
    now = time.time() if now is None else now
    found = [row(s, job, now) for s in spools(root) for job in s.list_jobs()]
    return sorted(found, key=lambda r: -r["age_seconds"])


def summary(found: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by state and the oldest job's age, for a node's health."""
    states = [r["state"] for r in found]
    return {
        "jobs": len(found),
        "active": states.count("active"),
        "deferred": states.count("deferred"),
        "held": states.count("held"),
        "oldest_seconds": max((r["age_seconds"] for r in found), default=0.0),
    }


def snapshot(
    spool: Spool,
    jobs: Collection[Job],
    limit: int,
    now: float | None = None,
    busy: Collection[str] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The summary of `jobs` (the delivery scheduler's, in memory) and rows for the
    `limit` oldest, oldest first: what the heartbeat reports, without reading every
    job file of the spool again each beat. A job `busy` in an attempt is active (its
    attempt count already says this attempt; its error, the last one's)."""
    now = time.time() if now is None else now
    states = [state(job, busy) for job in jobs]
    oldest = heapq.nsmallest(limit, jobs, key=lambda job: job.received_at)
    summary = {
        "jobs": len(states),
        "active": states.count("active"),
        "deferred": states.count("deferred"),
        "held": states.count("held"),
        "oldest_seconds": round(now - oldest[0].received_at, 1) if oldest else 0.0,
    }
    return summary, [row(spool, job, now, busy) for job in oldest]


def roots_of(root: Path, job: str | None) -> list[Path]:
    """The spool directories holding `job` (a job or queue id), or all of them (None)."""
    all_spools = spools(root)
    if job is None:
        return [s.root for s in all_spools]
    held = {s.root for s in all_spools for j in s.list_jobs() if job in (j.id, j.queue_id)}
    return sorted(held, key=str)
