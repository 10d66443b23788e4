"""Per-mailbox and per-domain antivirus policy, put and cleared by domain admins.

Each change calls `changed` (the caller's gateway.store.av_policy_live.notify_sync):
the gateway processes hold the policies in memory and reload on that notice, or at
their next `[clamav] policy_refresh` poll without Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from gateway.actions.common import SETTINGS_ROLES, Actor, BadInput
from gateway.address import domain_of
from gateway.store import audit, av_policy


def target_of(actor: Actor, target: str) -> str:
    """A normalised mailbox or @domain the actor may change (else NotFound)."""
    try:
        cleaned = av_policy.normalise_target(target)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    actor.require_domain(domain_of(cleaned))
    return cleaned


def effective(engine: Engine, actor: Actor, target: str) -> dict[str, Any]:
    """The effective policy of a target and, per field, where it comes from."""
    actor.require_role(*SETTINGS_ROLES)
    cleaned = target_of(actor, target)
    rows = av_policy.fetch_rows(engine, [cleaned, av_policy.domain_target(cleaned)])
    found = av_policy.resolve(rows, cleaned)
    own = rows.get(cleaned)
    return {
        "target": cleaned,
        "antivirus": found.policy.enabled,
        "mode": found.policy.mode,
        "keep_original": found.policy.keep_original,
        "from": dict(found.sources),
        "own": None if own is None else {k: own[k] for k in av_policy.FIELDS},
    }


def put(
    engine: Engine,
    actor: Actor,
    target: str,
    *,
    enabled: bool | None = None,
    mode: str | None = None,
    keep_original: bool | None = None,
    changed: Callable[[], None],
) -> dict[str, Any]:
    """Set the given fields (others keep theirs); audited with before and after; then
    `changed()` tells the gateway processes."""
    actor.require_role(*SETTINGS_ROLES)
    cleaned = target_of(actor, target)
    if enabled is None and mode is None and keep_original is None:
        raise BadInput("give at least one of antivirus, mode, keep_original")
    if mode is not None and mode not in av_policy.MODES:
        raise BadInput(f"mode: one of {', '.join(av_policy.MODES)}, not {mode!r}")
    before = av_policy.fetch_rows(engine, [cleaned]).get(cleaned)
    row = av_policy.set_policy(
        engine, cleaned, enabled=enabled, mode=mode, keep_original=keep_original, actor=actor.name
    )
    _audit(engine, actor, "policy.put", cleaned, before, row)
    changed()
    return effective(engine, actor, cleaned)


def clear(engine: Engine, actor: Actor, target: str, *, changed: Callable[[], None]) -> bool:
    actor.require_role(*SETTINGS_ROLES)
    cleaned = target_of(actor, target)
    before = av_policy.fetch_rows(engine, [cleaned]).get(cleaned)
    removed = av_policy.clear_policy(engine, cleaned)
    if removed:
        _audit(engine, actor, "policy.clear", cleaned, before, None)
        changed()
    return removed


def _audit(engine: Engine, actor: Actor, action: str, target: str, before: Any, after: Any) -> None:
    def fields(row: Any) -> Any:
        return None if row is None else {k: row[k] for k in av_policy.FIELDS}

    audit.record(
        engine,
        actor=actor.name,
        action=action,
        object_type="av_policy",
        object_id=target,
        domain=domain_of(target),
        before=fields(before),
        after=fields(after),
        address=actor.address,
    )
