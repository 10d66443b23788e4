"""A domain's rules in the database: read, save as a new version, history, rollback.

Domain admins edit only their domains' rules; each save and rollback is audited
(the version before and after) and announced to the nodes. Text that does not
compile is refused with every error and its line (RulesRejected, 422).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Engine

from gateway.actions.common import SETTINGS_ROLES, ActionError, Actor, BadInput, NotFound
from gateway.store import audit, rules_store
from gateway.store.rules_store import Checker, RulesInvalid, RulesReadOnly, UnknownVersion


class RulesRejected(BadInput):
    """The draft does not compile: `errors` are {"line", "message"}, line 1-based."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"line {e['line']}: {e['message']}" for e in errors))


class ReadOnly(ActionError):
    status = 409


def _domain(actor: Actor, domain: str) -> str:
    actor.require_role(*SETTINGS_ROLES)
    return actor.require_domain(domain)


def current(engine: Engine, actor: Actor, check: Checker, domain: str) -> dict[str, Any]:
    name = _domain(actor, domain)
    found = rules_store.current(engine, name)
    return {
        "domain": name,
        "version": None if found is None else found.version,
        "text": "" if found is None else found.text,
        "read_only": check.read_only(name),
    }


def history(engine: Engine, actor: Actor, domain: str) -> list[dict[str, Any]]:
    name = _domain(actor, domain)
    return [
        {k: v for k, v in version.as_json().items() if k != "text"}
        for version in rules_store.history(engine, name)
    ]


def save(
    engine: Engine,
    actor: Actor,
    check: Checker,
    domain: str,
    text: str,
    *,
    comment: str = "",
    changed: Callable[[], None] | None = None,
) -> dict[str, Any]:
    name = _domain(actor, domain)
    before = rules_store.current(engine, name)
    with _refusals():
        saved = rules_store.save(engine, name, text, actor.name, check=check, comment=comment)
    _audit(engine, actor, "rules.save", name, before, saved.version)
    if changed is not None:
        changed()
    return {k: v for k, v in saved.as_json().items() if k != "text"}


def rollback(
    engine: Engine,
    actor: Actor,
    check: Checker,
    domain: str,
    version: int,
    *,
    comment: str = "",
    changed: Callable[[], None] | None = None,
) -> dict[str, Any]:
    name = _domain(actor, domain)
    before = rules_store.current(engine, name)
    with _refusals():
        saved = rules_store.rollback(
            engine, name, version, actor.name, check=check, comment=comment
        )
    _audit(engine, actor, "rules.rollback", name, before, saved.version)
    if changed is not None:
        changed()
    return {k: v for k, v in saved.as_json().items() if k != "text"}


@contextmanager
def _refusals() -> Iterator[None]:
    """The store's refusals of a write, as the action errors the CLI and web answer."""
    try:
        yield
    except UnknownVersion as exc:
        raise NotFound(str(exc)) from None
    except RulesInvalid as exc:
        raise RulesRejected([{"line": e.line, "message": e.message} for e in exc.errors]) from None
    except RulesReadOnly as exc:
        raise ReadOnly(str(exc)) from None


def _audit(engine: Engine, actor: Actor, action: str, domain: str, before, after: int) -> None:
    audit.record(
        engine,
        actor=actor.name,
        action=action,
        object_type="rules",
        object_id=domain,
        domain=domain,
        before=None if before is None else {"version": before.version},
        after={"version": after},
        address=actor.address,
    )
