"""Quarantine actions: release, delete, confirm spam, in bulk; and what staff may see.

Each item is one recipient domain's held copy, so checking the item's domain against
the actor's is the whole isolation rule: a message to two domains has two items, and
releasing one releases only that domain's copies. An item of another domain answers
exactly as an unknown id does (NotFound). The action, its feedback row and its audit
row are written in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from gateway.actions.common import QUARANTINE_ROLES, ActionError, Actor, BadInput, NotFound
from gateway.lists import records as list_records
from gateway.lists.match import Entry, parse_value
from gateway.store import audit, feedback, ledger, quarantine
from gateway.store.quarantine_query import Filters, Page, page

# held for these, a release says the verdict was wrong (a false positive)
FALSE_POSITIVE_KINDS = (quarantine.SPAM, quarantine.REJECTED, quarantine.POLICY)
BLOCKS = ("sender", "ip")
BULK_OPS = ("release", "delete", "confirm-spam")


def visible_item(engine: Engine, actor: Actor, item_id: str) -> dict[str, Any]:
    """The item (without its bytes) if the actor may see it, else NotFound."""
    actor.require_role(*QUARANTINE_ROLES)
    item = quarantine.get(engine, item_id)
    if item is None or not actor.may_see(item["domain"]):
        raise NotFound(f"{item_id}: no such quarantine item")
    return item


def original(engine: Engine, actor: Actor, item_id: str) -> bytes:
    visible_item(engine, actor, item_id)
    raw = quarantine.original(engine, item_id)
    if raw is None:
        raise NotFound(f"{item_id}: no such quarantine item")
    return raw


def verdict(engine: Engine, actor: Actor, item_id: str) -> dict[str, Any]:
    """The item with the ledger's verdict of its recipients and of the message."""
    item = visible_item(engine, actor, item_id)
    m, r = ledger.messages, ledger.recipients
    wanted = [x.lower() for x in item["rcpts"]]
    with engine.connect() as conn:
        message = conn.execute(select(m).where(m.c.id == item["message_id"])).first()
        rcpts = [
            dict(row._mapping)
            for row in conn.execute(select(r).where(r.c.message_id == item["message_id"]))
            if row.rcpt.lower() in wanted
        ]
    msg = dict(message._mapping) if message is not None else {}
    filters = msg.get("filters")
    if isinstance(filters, dict) and item["domain"] in filters:  # per domain: only ours
        msg["filters"] = filters[item["domain"]]
    return {"item": item, "message": msg, "recipients": rcpts}


def list_page(
    engine: Engine, actor: Actor, filters: Filters, after: str | None = None, limit: int = 50
) -> Page:
    actor.require_role(*QUARANTINE_ROLES)
    if filters.domain is not None and not actor.may_see(filters.domain):
        return Page([], None)  # a foreign domain's filter finds nothing, as an unknown one
    domains = None if actor.all_domains else list(actor.domains)
    return page(engine, filters, domains, after, limit)


def release(
    engine: Engine, actor: Actor, item_id: str, *, false_positive: bool = True
) -> dict[str, Any]:
    """Ask the gateway to deliver the item to its recipients; a release of held spam
    is recorded as a false positive unless the actor says it was not one."""
    item = visible_item(engine, actor, item_id)
    with engine.begin() as conn:
        _move(conn, actor, item, (quarantine.HELD,), quarantine.RELEASE_REQUESTED, "release")
        recorded = 0
        if false_positive and item["kind"] in FALSE_POSITIVE_KINDS:
            recorded = len(
                feedback.add_feedback(
                    conn,
                    item["message_id"],
                    feedback.HAM,
                    source="release",
                    actor=actor.name,
                    rcpts=item["rcpts"],
                    event=f"release:{item['id']}",
                    details={"quarantine_id": item["id"], "held_as": item["kind"]},
                ).recorded
            )
    return {"id": item_id, "status": quarantine.RELEASE_REQUESTED, "false_positive": recorded}


def delete(engine: Engine, actor: Actor, item_id: str) -> dict[str, Any]:
    item = visible_item(engine, actor, item_id)
    with engine.begin() as conn:
        _move(
            conn,
            actor,
            item,
            (quarantine.HELD, quarantine.RELEASE_REQUESTED),
            quarantine.DELETED,
            "delete",
        )
    return {"id": item_id, "status": quarantine.DELETED}


def confirm_spam(
    engine: Engine,
    actor: Actor,
    item_id: str,
    *,
    block: str | None = None,
    lists_changed: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Record that the held mail was spam; `block` "sender" or "ip" also blocks the
    sending address or IP for the item's domain (the lists' shared record)."""
    if block is not None and block not in BLOCKS:
        raise BadInput(f"block: one of {', '.join(BLOCKS)}, not {block!r}")
    item = visible_item(engine, actor, item_id)
    with engine.begin() as conn:
        result = feedback.add_feedback(
            conn,
            item["message_id"],
            feedback.SPAM,
            source="abuse",
            actor=actor.name,
            rcpts=item["rcpts"],
            event=f"confirm:{item['id']}",
            details={"quarantine_id": item["id"]},
        )
        audit.record(
            conn,
            actor=actor.name,
            action="quarantine.confirm-spam",
            object_type="quarantine",
            object_id=item_id,
            domain=item["domain"],
            after={"recorded": len(result.recorded), "block": block},
            address=actor.address,
        )
        source = _source(conn, item["message_id"], block) if block else None
    out: dict[str, Any] = {"id": item_id, "recorded": len(result.recorded)}
    if block and source:
        kind, value = parse_value(source, "ip" if block == "ip" else "sender")
        entry = Entry(
            "block",
            kind,
            value,
            domain=item["domain"],
            reason=f"confirmed spam {item_id}",
            added_by=actor.name,
        )
        _, created = list_records.add_entry(engine, entry, existing="merge")
        audit.record(
            engine,
            actor=actor.name,
            action="lists.add",
            object_type="list_entry",
            object_id=f"block {kind} {value}",
            domain=item["domain"],
            after={"list": "block", "kind": kind, "value": value, "created": created},
            address=actor.address,
        )
        if lists_changed is not None:
            lists_changed()
        out["blocked"] = {"kind": kind, "value": value}
    elif block:
        raise ActionError(f"{item_id}: the mail has no {block} to block (null sender?)")
    return out


@dataclass(frozen=True)
class BulkResult:
    op: str
    done: list[str]
    failed: dict[str, str]  # id -> why (foreign ids read "no such quarantine item")

    def as_json(self) -> dict[str, Any]:
        return {"op": self.op, "done": self.done, "failed": self.failed}


def bulk(
    engine: Engine,
    actor: Actor,
    op: str,
    ids: Sequence[str] | None = None,
    filters: Filters | None = None,
    *,
    limit: int = 1000,
    false_positive: bool = True,
    block: str | None = None,
    lists_changed: Callable[[], None] | None = None,
) -> BulkResult:
    """One action on a selection (ids) or on every held item a filter finds (up to
    `limit`), each checked and audited as if done alone."""
    actor.require_role(*QUARANTINE_ROLES)
    if op not in BULK_OPS:
        raise BadInput(f"op: one of {', '.join(BULK_OPS)}, not {op!r}")
    if ids is None:
        if filters is None:
            raise BadInput("give ids or a filter")
        ids = [it["id"] for it in list_page(engine, actor, filters, None, limit).items]
    done: list[str] = []
    failed: dict[str, str] = {}
    for item_id in dict.fromkeys(ids):
        try:
            if op == "release":
                release(engine, actor, item_id, false_positive=false_positive)
            elif op == "delete":
                delete(engine, actor, item_id)
            else:
                confirm_spam(engine, actor, item_id, block=block, lists_changed=lists_changed)
        except ActionError as exc:
            failed[item_id] = str(exc)
        else:
            done.append(item_id)
    return BulkResult(op, done, failed)


def _move(
    conn: Connection,
    actor: Actor,
    item: dict[str, Any],
    from_states: tuple[str, ...],
    to_state: str,
    verb: str,
) -> None:
    if not quarantine.transition(conn, item["id"], from_states, to_state, actor.name):
        raise ActionError(f"{item['id']}: not held (it is {item['status']})")
    audit.record(
        conn,
        actor=actor.name,
        action=f"quarantine.{verb}",
        object_type="quarantine",
        object_id=item["id"],
        domain=item["domain"],
        before={"status": item["status"]},
        after={"status": to_state},
        address=actor.address,
    )


def _source(conn: Connection, message_id: str, block: str) -> str | None:
    m = ledger.messages
    row = conn.execute(select(m.c.mail_from, m.c.client_ip).where(m.c.id == message_id)).first()
    if row is None:
        return None
    return (row.client_ip if block == "ip" else row.mail_from) or None
