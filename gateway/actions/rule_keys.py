"""One top-level key of a domain's rules text (thresholds, report addresses) set on its
own: read back from the rules in force, written as a new rules version, audited.

Keeping such settings inside the rules text gives them versions, rollback and
pick-up by every node for free; this module is the one place that edits them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from filters.rules.edit import CannotEdit, set_key
from gateway.actions.common import SETTINGS_ROLES, Actor, BadInput
from gateway.actions.rules import refusals
from gateway.pipeline.rules_db import SettingsChecker
from gateway.store import audit, rules_store


def settings_domain(actor: Actor, domain: str) -> str:
    """The domain's name, for an actor who may edit its settings (else NotFound/Forbidden)."""
    actor.require_role(*SETTINGS_ROLES)
    return actor.require_domain(domain)


def own(
    check: SettingsChecker, domain: str, found: rules_store.RuleVersion | None, attribute: str
) -> dict[str, Any]:
    """What the domain's rules in force set for `attribute` of the compiled policy."""
    if found is None:
        return {}
    with refusals():
        return dict(getattr(check.compile(domain, found.text), attribute))


def save(
    engine: Engine,
    actor: Actor,
    check: SettingsChecker,
    domain: str,
    found: rules_store.RuleVersion | None,
    *,
    key: str,
    line: str | None,
    summary: str,
    before: dict[str, Any],
    after: dict[str, Any],
) -> rules_store.RuleVersion:
    """Replace `key` by `line` (None removes it) in the rules text as a new version;
    audited as `<key>.set` with what the domain set before and after."""
    text = found.text if found is not None else f"domain: {domain}\n"
    try:
        text = set_key(text, key, line)
    except CannotEdit as exc:
        raise BadInput(f"{domain}: {exc}") from None
    with refusals():
        saved = rules_store.save(
            engine,
            domain,
            text,
            actor.name,
            check=check,
            comment=f"{key.replace('_', ' ')}: {summary}",
        )
    audit.record(
        engine,
        actor=actor.name,
        action=f"{key}.set",
        object_type=key,
        object_id=domain,
        domain=domain,
        before={"set": before, "version": None if found is None else found.version},
        after={"set": after, "version": saved.version},
        address=actor.address,
    )
    return saved
