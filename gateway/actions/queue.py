"""The queue and node health, for operators: every node as it last reported itself
(gateway/store/node_status.py), and the queue actions (retry now, hold, release,
delete: the requests `mailwarden queue` makes). A job of this node's spool is acted
on at once; a job another node reported (or a node named) gets a request in the
shared database that its node applies (gateway/store/queue_requests.py). Anyone else
hears 404: nothing says these pages exist.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from gateway.actions.common import Actor, BadInput, NotFound
from gateway.adapters.redis import publish_sync
from gateway.config import Settings, is_this_node
from gateway.store import audit, node_status, queue_control, queue_requests, queue_view
from gateway.store.users import OPERATOR

log = logging.getLogger(__name__)

DOWN_AFTER_BEATS = 3  # a node whose last report is older than this many heartbeats is down


def _operator(actor: Actor) -> None:
    if actor.role != OPERATOR:
        raise NotFound("no such page")


def _age(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 1)


def nodes(engine: Engine, actor: Actor, settings: Settings) -> list[dict[str, Any]]:
    """Every node that ever reported: up or not, its parts, signature age, queue counts."""
    _operator(actor)
    now = datetime.now(UTC)
    limit = DOWN_AFTER_BEATS * settings.report.heartbeat_interval
    found = []
    for row in node_status.all_nodes(engine):
        seen = _age(row["updated_at"], now)
        up = seen is not None and seen <= limit
        signatures = row["signatures"] or None
        if signatures and signatures.get("db_date"):
            date = datetime.fromisoformat(signatures["db_date"])
            date = date if date.tzinfo else date.replace(tzinfo=UTC)
            signatures = {**signatures, "age_days": round((now - date).total_seconds() / 86400, 1)}
        found.append(
            {
                "node": row["node"],
                "up": up,
                "last_report": row["updated_at"].isoformat(),
                "seconds_since_report": seen,
                "started_at": row["started_at"].isoformat() if row["started_at"] else None,
                "database": "ok" if up else "no report",
                "clamd": row["clamd"],
                "redis": row["redis"],
                "next_hop": row["next_hop"],
                "signatures": signatures,
                "queue": row["queue"] or queue_view.summary([]),
            }
        )
    return found


def queue(engine: Engine, actor: Actor, settings: Settings) -> dict[str, Any]:
    """Every node's waiting jobs (as of its last report) and this node's, live."""
    _operator(actor)
    reported = {r["node"]: r for r in node_status.all_nodes(engine)}
    return {
        "this_node": {
            "spool": str(settings.spool.path),
            "jobs": queue_view.rows(Path(settings.spool.path)),
        },
        "nodes": [
            {**n, "jobs": reported[n["node"]]["jobs"] or []} for n in nodes(engine, actor, settings)
        ],
    }


def _reporting(engine: Engine, settings: Settings, job: str | None) -> str | None:
    """The other node whose last report lists `job`, if any."""
    for row in node_status.all_nodes(engine):
        if is_this_node(settings, row["node"]):
            continue
        if any(job in (j.get("id"), j.get("queue_id")) for j in row["jobs"] or []):
            return row["node"]
    return None


def control(
    engine: Engine,
    actor: Actor,
    settings: Settings,
    op: str,
    job: str | None,
    *,
    node: str | None = None,
    wait: float = 5.0,
) -> dict[str, Any]:
    """Ask this node's gateway to retry now, hold, release or delete a job (flush: every
    job when `job` is None); its answer, or that it will apply when the gateway runs.
    For another node's job (or `node` naming another node) the request is left for that
    node, and the answer carries its id ("request") instead of the outcome."""
    _operator(actor)
    if op not in queue_control.OPS:
        raise BadInput(f"op: one of {', '.join(queue_control.OPS)}, not {op!r}")
    if job is None and op != "flush":
        raise BadInput(f"{op}: name the job")
    if node is not None and not is_this_node(settings, node):
        if node not in {r["node"] for r in node_status.all_nodes(engine)}:
            raise NotFound(f"{node}: no such node")
        return _remote(engine, actor, settings, node, op, job)
    roots = queue_view.roots_of(Path(settings.spool.path), job)
    if not roots:
        other = None if node is not None else _reporting(engine, settings, job)
        if other is None:
            raise NotFound(f"{job}: no such job in this node's queue nor in another's report")
        return _remote(engine, actor, settings, other, op, job)
    requests = [(root, queue_control.submit(root, op, job, actor.name)) for root in roots]
    started = time.monotonic()
    answers = []
    for root, request in requests:
        left = max(0.1, wait - (time.monotonic() - started))
        answers.append(queue_control.wait_answer(root, request, left))
    done = [a for a in answers if a is not None]
    result = {
        "op": op,
        "job": job,
        "ok": None if len(done) < len(answers) else all(a["ok"] for a in done),
        "messages": [a["message"] for a in done]
        or ["requested; the gateway applies it on its next round or when it starts"],
    }
    _audit(engine, actor, op, job, {"ok": result["ok"], "messages": result["messages"]})
    return result


def _remote(
    engine: Engine, actor: Actor, settings: Settings, node: str, op: str, job: str | None
) -> dict[str, Any]:
    request = queue_requests.add(engine, node, op, job, actor.name)
    # the node named acts at once; without Redis it finds the row by its own poll
    redis = settings.redis
    publish_sync(redis.url, queue_requests.channel(redis.prefix), node, "queue request", log)
    _audit(engine, actor, op, job, {"node": node, "request": request})
    return {
        "op": op,
        "job": job,
        "ok": None,
        "node": node,
        "request": request,
        "messages": [f"requested on node {node}"],
    }


def _audit(engine: Engine, actor: Actor, op: str, job: str | None, after: dict) -> None:
    audit.record(
        engine,
        actor=actor.name,
        action=f"queue.{op}",
        object_type="queue",
        object_id=job or "all",
        after=after,
        address=actor.address,
    )


def request_status(engine: Engine, actor: Actor, request_id: str) -> dict[str, Any]:
    """A request left for another node: pending, taken (in its spool) or done, and
    then its outcome."""
    _operator(actor)
    row = queue_requests.get(engine, request_id)
    if row is None:
        raise NotFound(f"{request_id}: no such queue request")
    return {
        "request": row["id"],
        "node": row["node"],
        "op": row["op"],
        "job": row["job"],
        "requested_by": row["requested_by"],
        "requested_at": row["requested_at"].isoformat(),
        "state": row["state"],
        "ok": row["ok"],
        "message": row["message"],
        "done_at": row["done_at"].isoformat() if row["done_at"] else None,
    }
