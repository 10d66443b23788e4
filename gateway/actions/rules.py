"""A domain's rules in the database: read, save as a new version, history, rollback.

Domain admins edit only their domains' rules; each save and rollback is audited
(the version before and after) and announced to the nodes. Text that does not
compile is refused with every error and its line (RulesRejected, 422).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Engine

from gateway.actions.common import SETTINGS_ROLES, ActionError, Actor, BadInput, NotFound
from gateway.address import domain_of
from gateway.pipeline.dry_run import MAX_MESSAGE_BYTES, Bench, envelope_for
from gateway.pipeline.rules_db import SettingsChecker
from gateway.store import audit, rules_store
from gateway.store.rules_store import Checker, RulesInvalid, RulesReadOnly, UnknownVersion


class RulesRejected(BadInput):
    """The draft does not compile: `errors` are {"line", "message"}, line 1-based."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"line {e['line']}: {e['message']}" for e in errors))


class ReadOnly(ActionError):
    status = 409


class TooLarge(BadInput):
    status = 413


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
    with refusals():
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
    with refusals():
        saved = rules_store.rollback(
            engine, name, version, actor.name, check=check, comment=comment
        )
    _audit(engine, actor, "rules.rollback", name, before, saved.version)
    if changed is not None:
        changed()
    return {k: v for k, v in saved.as_json().items() if k != "text"}


async def dry_run(
    engine: Engine,
    actor: Actor,
    check: SettingsChecker,
    bench: Bench,
    domain: str,
    text: str,
    raw: bytes,
    *,
    mail_from: str | None = None,
    rcpts: list[str] | None = None,
    client_ip: str | None = None,
) -> dict[str, Any]:
    """Which rules of the draft `text` hit `raw`, the symbols and score, and the action
    per recipient: the gateway's own chain and policy (gateway/pipeline/dry_run.py) with
    the draft in force for the domain. Nothing is saved; the trial is audited."""
    name = _domain(actor, domain)
    if not raw.strip():
        raise BadInput("paste or upload a message to try the rules on")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise TooLarge(
            f"the message is {len(raw):,} bytes; a dry run takes at most "
            f"{MAX_MESSAGE_BYTES:,} bytes ({MAX_MESSAGE_BYTES // (1024 * 1024)} MB)"
        )
    with refusals():
        policy = check.compile(name, text)
    rcpts = [r.strip().strip("<>") for r in rcpts or [] if r.strip()]
    for rcpt in rcpts:
        if domain_of(rcpt) != name:
            raise BadInput(f"{rcpt}: not a recipient of {name} (a dry run tries {name}'s rules)")
    ip = (client_ip or "").strip() or "127.0.0.1"
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise BadInput(f"client_ip {ip!r}: not an IP address") from None
    envelope = envelope_for(name, raw, mail_from, rcpts or None, ip)
    result = await bench.judge(policy, envelope, raw)
    await asyncio.to_thread(
        audit.record,
        engine,
        actor=actor.name,
        action="rules.test",
        object_type="rules",
        object_id=name,
        domain=name,
        before=None,
        after={
            "message_sha256": hashlib.sha256(raw).hexdigest(),
            "bytes": len(raw),
            "fired": result["fired"],
            "actions": {d["rcpt"]: d["action"] for d in result["decisions"]},
        },
        address=actor.address,
    )
    return result


@contextmanager
def refusals() -> Iterator[None]:
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
