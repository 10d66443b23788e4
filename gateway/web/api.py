"""The JSON API: the console's actions for scripts, with bearer tokens.

Same actions and the same authorisation as the pages (gateway/actions/); errors are
JSON bodies {"error": "..."} with the status that says what went wrong (401, 403,
404 for anything not of the caller's domains, 409, 422, 429).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from gateway.actions import lists as list_actions
from gateway.actions import policy as policy_actions
from gateway.actions import quarantine as q_actions
from gateway.actions import queue as queue_actions
from gateway.actions import report_addresses as report_actions
from gateway.actions import rules as rule_actions
from gateway.actions import thresholds as threshold_actions
from gateway.actions.common import BadInput
from gateway.store import sessions
from gateway.store.quarantine_query import Filters
from gateway.web.auth import Unauthorized, client_address
from gateway.web.context import Console


class TokenRequest(BaseModel):
    username: str
    password: str


class TokenResponse(BaseModel):
    token: str
    expires_at: datetime
    token_type: str = "bearer"


class ReleaseRequest(BaseModel):
    false_positive: bool = True


class ConfirmRequest(BaseModel):
    block: Literal["sender", "ip"] | None = None


class BulkRequest(BaseModel):
    op: Literal["release", "delete", "confirm-spam"]
    ids: list[str] | None = Field(None, max_length=1000)
    filter: Filters | None = None  # the stdlib dataclass, validated by pydantic
    false_positive: bool = True
    block: Literal["sender", "ip"] | None = None


class ListEntryRequest(BaseModel):
    list: Literal["block", "allow"]
    value: str
    kind: str | None = None
    reason: str = ""
    expires_at: datetime | None = None


class RulesRequest(BaseModel):
    text: str = Field(max_length=1_000_000)
    comment: str = ""


class RulesTestRequest(BaseModel):
    text: str = Field(max_length=1_000_000)  # the draft policy (YAML)
    message: str | None = None  # the raw message as text (headers, blank line, body)
    message_base64: str | None = None  # ... or its bytes, base64-encoded
    mail_from: str | None = None  # default: the From address
    rcpts: list[str] | None = Field(None, max_length=100)  # default: To/Cc of the domain
    client_ip: str | None = None  # default 127.0.0.1


class ThresholdsRequest(BaseModel):
    """Each key: a number, null for never; a key left out follows the operator's default."""

    tag: float | None = None
    quarantine: float | None = None
    reject: float | None = None


class ReportAddressesRequest(BaseModel):
    """Each kind: a local part (spam-report), null for none; left out: the [report] one."""

    spam: str | None = None
    ham: str | None = None
    virus: str | None = None


class QueueControlRequest(BaseModel):
    op: Literal["flush", "hold", "release", "delete"]
    job: str | None = None  # a job or queue id; None: every job (flush only)
    node: str | None = None  # another node (as /api/nodes names it); None: where the job is


class RollbackRequest(BaseModel):
    version: int


class PolicyRequest(BaseModel):
    antivirus: bool | None = None
    mode: Literal["clean", "detect"] | None = None
    keep_original: bool | None = None


def build(console: Console) -> APIRouter:
    api = APIRouter(prefix="/api")
    auth = console.auth
    engine = console.engine

    @api.post("/token", response_model=TokenResponse)
    def token(body: TokenRequest, request: Request) -> TokenResponse:
        """A bearer token for the API (username and password), with its expiry."""
        got = auth.login(body.username, body.password, client_address(request), sessions.API)
        if got is None:
            raise Unauthorized("wrong user name or password")
        secret, who = got
        return TokenResponse(token=secret, expires_at=who.session.expires_at)

    @api.get("/quarantine")
    def quarantine_list(
        request: Request,
        domain: str | None = None,
        status: str | None = "held",
        kind: str | None = None,
        reason: str | None = None,
        sender: str | None = None,
        recipient: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """Held items of the caller's domains, newest first; `after` is the `next`
        cursor of the previous page (keyset paging)."""
        who = auth.from_bearer(request)
        filters = Filters(
            domain, None if status == "any" else status, kind, reason, sender, recipient,
            subject, since, until, min_score, max_score,
        )  # fmt: skip
        try:
            found = q_actions.list_page(engine, who.actor, filters, after, limit)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        return {"items": [_item_json(i) for i in found.items], "next": found.next}

    @api.get("/quarantine/{item_id}")
    def quarantine_item(item_id: str, request: Request) -> dict[str, Any]:
        """One item with its full verdict (the ledger's rows for its recipients)."""
        who = auth.from_bearer(request)
        return q_actions.verdict(engine, who.actor, item_id)

    @api.post("/quarantine/bulk")
    def quarantine_bulk(body: BulkRequest, request: Request) -> dict[str, Any]:
        """One action on a selection of ids or on what a filter finds (at most 1,000)."""
        who = auth.from_bearer(request)
        filters = body.filter
        return q_actions.bulk(
            engine,
            who.actor,
            body.op,
            body.ids,
            filters,
            false_positive=body.false_positive,
            block=body.block,
            lists_changed=console.lists_changed,
        ).as_json()

    @api.post("/quarantine/{item_id}/release")
    def quarantine_release(
        item_id: str, request: Request, body: ReleaseRequest | None = None
    ) -> dict[str, Any]:
        """Deliver the item to its recipients (recorded as a false positive unless
        false_positive is false)."""
        who = auth.from_bearer(request)
        fp = True if body is None else body.false_positive
        return q_actions.release(engine, who.actor, item_id, false_positive=fp)

    @api.post("/quarantine/{item_id}/delete")
    def quarantine_delete(item_id: str, request: Request) -> dict[str, Any]:
        who = auth.from_bearer(request)
        return q_actions.delete(engine, who.actor, item_id)

    @api.post("/quarantine/{item_id}/confirm-spam")
    def quarantine_confirm(
        item_id: str, request: Request, body: ConfirmRequest | None = None
    ) -> dict[str, Any]:
        """Record the held mail as spam; optionally block its sender or IP for the domain."""
        who = auth.from_bearer(request)
        return q_actions.confirm_spam(
            engine,
            who.actor,
            item_id,
            block=None if body is None else body.block,
            lists_changed=console.lists_changed,
        )

    @api.get("/domains/{domain}/lists")
    def lists_get(domain: str, request: Request) -> dict[str, Any]:
        who = auth.from_bearer(request)
        rows = list_actions.entries(engine, who.actor, domain)
        return {"domain": domain.lower(), "entries": [_entry_json(r) for r in rows]}

    @api.post("/domains/{domain}/lists", status_code=201)
    def lists_add(domain: str, body: ListEntryRequest, request: Request) -> dict[str, Any]:
        who = auth.from_bearer(request)
        return list_actions.add(
            engine,
            who.actor,
            domain,
            body.list,
            body.value,
            kind=body.kind,
            reason=body.reason,
            expires_at=body.expires_at,
            lists_changed=console.lists_changed,
        )

    @api.delete("/domains/{domain}/lists")
    def lists_remove(
        domain: str, request: Request, list: str, value: str, kind: str | None = None
    ) -> dict[str, Any]:
        """Remove a hand-made entry (?list=block&value=...&kind=...)."""
        who = auth.from_bearer(request)
        list_actions.remove(
            engine, who.actor, domain, list, value, kind=kind, lists_changed=console.lists_changed
        )
        return {"removed": True}

    @api.get("/domains/{domain}/policies/{mailbox}")
    def policy_get(domain: str, mailbox: str, request: Request) -> dict[str, Any]:
        """The effective antivirus policy of a mailbox (local part, or * for the domain)."""
        who = auth.from_bearer(request)
        return policy_actions.effective(engine, who.actor, _target(domain, mailbox))

    @api.put("/domains/{domain}/policies/{mailbox}")
    def policy_put(
        domain: str, mailbox: str, body: PolicyRequest, request: Request
    ) -> dict[str, Any]:
        who = auth.from_bearer(request)
        return policy_actions.put(
            engine,
            who.actor,
            _target(domain, mailbox),
            enabled=body.antivirus,
            mode=body.mode,
            keep_original=body.keep_original,
            changed=console.policies_changed,
        )

    @api.get("/domains/{domain}/rules")
    def rules_get(domain: str, request: Request) -> dict[str, Any]:
        """The rules in force (YAML text, its version) and every earlier version."""
        who = auth.from_bearer(request)
        found = rule_actions.current(engine, who.actor, console.rules_checker, domain)
        return {**found, "history": rule_actions.history(engine, who.actor, domain)}

    @api.put("/domains/{domain}/rules")
    def rules_put(domain: str, body: RulesRequest, request: Request) -> dict[str, Any]:
        """Save as a new version; 422 with `errors` [{line, message}] when it does not
        compile, 409 when the domain's rules are kept in [rules] dir files."""
        who = auth.from_bearer(request)
        return rule_actions.save(
            engine,
            who.actor,
            console.rules_checker,
            domain,
            body.text,
            comment=body.comment,
            changed=console.rules_changed,
        )

    @api.post("/domains/{domain}/rules/test")
    async def rules_test(domain: str, body: RulesTestRequest, request: Request) -> dict[str, Any]:
        """Dry run: the draft against a message, through the gateway's own filters and
        policy; which rules hit, symbols, score and the action per recipient. Nothing is
        saved. 422 with `errors` [{line, message}] when the draft does not compile, 413
        when the message is larger than a dry run takes."""
        who = auth.from_bearer(request)
        return await rule_actions.dry_run(
            engine,
            who.actor,
            console.rules_checker,
            console.dry_runs,
            domain,
            body.text,
            _message_bytes(body.message, body.message_base64),
            mail_from=body.mail_from,
            rcpts=body.rcpts,
            client_ip=body.client_ip,
        )

    @api.get("/domains/{domain}/thresholds")
    def thresholds_get(domain: str, request: Request) -> dict[str, Any]:
        """The keys the domain sets, the operator's defaults, and what is in force."""
        who = auth.from_bearer(request)
        return threshold_actions.show(engine, who.actor, console.rules_checker, domain)

    @api.put("/domains/{domain}/thresholds")
    def thresholds_put(domain: str, body: ThresholdsRequest, request: Request) -> dict[str, Any]:
        """Set the domain's thresholds (a new rules version); 422 when they do not rise
        from tag to quarantine to reject, 409 when its rules are [rules] dir files."""
        who = auth.from_bearer(request)
        values = {k: getattr(body, k) for k in body.model_fields_set}
        return threshold_actions.put(
            engine,
            who.actor,
            console.rules_checker,
            domain,
            values,
            changed=console.rules_changed,
        )

    @api.get("/domains/{domain}/report-addresses")
    def report_addresses_get(domain: str, request: Request) -> dict[str, Any]:
        """Which local parts take users' spam/ham/virus reports, and the defaults."""
        who = auth.from_bearer(request)
        return report_actions.show(engine, who.actor, console.rules_checker, domain)

    @api.put("/domains/{domain}/report-addresses")
    def report_addresses_put(
        domain: str, body: ReportAddressesRequest, request: Request
    ) -> dict[str, Any]:
        """Set them (a new rules version); 422 for a bad local part or one taken twice."""
        who = auth.from_bearer(request)
        values = {k: getattr(body, k) for k in body.model_fields_set}
        return report_actions.put(
            engine, who.actor, console.rules_checker, domain, values, changed=console.rules_changed
        )

    @api.post("/domains/{domain}/rules/rollback")
    def rules_rollback(domain: str, body: RollbackRequest, request: Request) -> dict[str, Any]:
        """A new version with an earlier version's text."""
        who = auth.from_bearer(request)
        return rule_actions.rollback(
            engine,
            who.actor,
            console.rules_checker,
            domain,
            body.version,
            changed=console.rules_changed,
        )

    @api.get("/nodes")
    def nodes_get(request: Request) -> dict[str, Any]:
        """Operators: every node, up or not (heartbeats), clamd/Redis/next hop, signature
        age and queue counts, as each last reported."""
        who = auth.from_bearer(request)
        return {"nodes": queue_actions.nodes(engine, who.actor, console.settings)}

    @api.get("/queue")
    def queue_get(request: Request) -> dict[str, Any]:
        """Operators: what waits for delivery, on this node (live) and on every node (as
        of its last report): age, attempts, last error."""
        who = auth.from_bearer(request)
        return queue_actions.queue(engine, who.actor, console.settings)

    @api.post("/queue/control")
    def queue_control(
        body: QueueControlRequest, request: Request, response: Response
    ) -> dict[str, Any]:
        """Operators: retry now (flush), hold, release or delete a job: 200 with the
        outcome for this node's job, 202 with a request id for another node's."""
        who = auth.from_bearer(request)
        answer = queue_actions.control(
            engine, who.actor, console.settings, body.op, body.job, node=body.node
        )
        if "request" in answer:
            response.status_code = 202
        return answer

    @api.get("/queue/requests/{request_id}")
    def queue_request_get(request_id: str, request: Request) -> dict[str, Any]:
        """Operators: a request left for another node, and its outcome once applied."""
        who = auth.from_bearer(request)
        return queue_actions.request_status(engine, who.actor, request_id)

    return api


def _message_bytes(text: str | None, encoded: str | None) -> bytes:
    if text is not None and encoded is not None:
        raise BadInput("give the message once: message or message_base64")
    if encoded is not None:
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput("message_base64: not valid base64") from None
    return (text or "").encode("utf-8", "surrogateescape")


def _target(domain: str, mailbox: str) -> str:
    """'example.com', 'bob' -> 'bob@example.com'; '*' or '@' -> '@example.com'."""
    if mailbox in ("*", "@", "_domain"):
        return f"@{domain}"
    local = mailbox.rpartition("@")[0] if "@" in mailbox else mailbox
    if "@" in mailbox and mailbox.rpartition("@")[2].lower() != domain.lower():
        raise BadInput(f"{mailbox} is not a mailbox of {domain}")
    return f"{local}@{domain}"


def _item_json(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "data"}


def _entry_json(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("list", "kind", "value", "reason", "added_by", "added_at", "expires_at", "source")
    return {k: row[k] for k in keys}
