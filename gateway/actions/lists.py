"""A domain's allow and block list entries, added and removed by its admins.

Domain admins change only their domains' entries; global entries (every domain) are
the operators'. Each change is audited and announced to the nodes (`lists_changed`,
which publishes through Redis when configured; nodes poll the version otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway.actions.common import SETTINGS_ROLES, Actor, BadInput, NotFound
from gateway.lists import records
from gateway.lists.match import GLOBAL, LISTS, Entry, parse_value
from gateway.store import audit
from gateway.store.users import OPERATOR


def _domain(actor: Actor, domain: str) -> str:
    actor.require_role(*SETTINGS_ROLES)
    if domain in (GLOBAL, "*"):
        actor.require_role(OPERATOR)
        return GLOBAL
    return actor.require_domain(domain)


def entries(engine: Engine, actor: Actor, domain: str) -> list[dict[str, Any]]:
    """A domain's entries (hand-made and imported), newest first."""
    target = _domain(actor, domain)
    e = records.list_entries
    with engine.connect() as conn:
        rows = conn.execute(
            select(e).where(e.c.domain == target).order_by(e.c.added_at.desc(), e.c.id.desc())
        )
        return [dict(r._mapping) for r in rows]


def add(
    engine: Engine,
    actor: Actor,
    domain: str,
    list_name: str,
    value: str,
    *,
    kind: str | None = None,
    reason: str = "",
    expires_at: datetime | None = None,
    lists_changed: Callable[[], None] | None = None,
) -> dict[str, Any]:
    target = _domain(actor, domain)
    if list_name not in LISTS:
        raise BadInput(f"list: one of {', '.join(LISTS)}, not {list_name!r}")
    try:
        kind, normalised = parse_value(value, kind)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    entry = Entry(
        list_name,
        kind,
        normalised,
        domain=target,
        reason=reason[:500],
        added_by=actor.name,
        expires_at=expires_at,
    )
    _, created = records.add_entry(engine, entry)
    after = {"list": list_name, "kind": kind, "value": normalised, "reason": entry.reason}
    _audit(engine, actor, "lists.add", target, entry, after=after)
    if lists_changed is not None:
        lists_changed()
    return {**after, "domain": target, "created": created}


def remove(
    engine: Engine,
    actor: Actor,
    domain: str,
    list_name: str,
    value: str,
    *,
    kind: str | None = None,
    lists_changed: Callable[[], None] | None = None,
) -> None:
    target = _domain(actor, domain)
    try:
        kind, normalised = parse_value(value, kind)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if not records.remove_entry(engine, list_name, kind, normalised, target):
        raise NotFound(f"{list_name} {kind} {normalised}: no such entry")
    entry = Entry(list_name, kind, normalised, domain=target)
    before = {"list": list_name, "kind": kind, "value": normalised}
    _audit(engine, actor, "lists.remove", target, entry, before=before)
    if lists_changed is not None:
        lists_changed()


def _audit(
    engine: Engine,
    actor: Actor,
    action: str,
    domain: str,
    entry: Entry,
    before: Any = None,
    after: Any = None,
) -> None:
    audit.record(
        engine,
        actor=actor.name,
        action=action,
        object_type="list_entry",
        object_id=f"{entry.list} {entry.kind} {entry.value}",
        domain=domain or None,
        before=before,
        after=after,
        address=actor.address,
    )
