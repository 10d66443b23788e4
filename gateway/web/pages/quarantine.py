"""The quarantine for abuse staff and admins: the list with its filters, one message
(its sanitised HTML only inside a sandboxed frame, attachments as downloads), and
release, delete, confirm-spam and bulk actions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gateway.actions import quarantine as q_actions
from gateway.actions.common import ATTACHMENT_ROLES, BadInput, NotFound
from gateway.store.quarantine_query import Filters
from gateway.web import message_view
from gateway.web.auth import Who
from gateway.web.context import Console
from gateway.web.pages.kit import Kit

FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'"


def build(kit: Kit) -> APIRouter:
    pages = APIRouter()
    console, auth, engine = kit.console, kit.auth, kit.engine
    render, posted, back = kit.render, kit.posted, kit.back

    @pages.get("/quarantine", response_class=HTMLResponse)
    def quarantine_list(request: Request):
        who = auth.from_cookie(request)
        filters = _filters(request)
        after = request.query_params.get("after") or None
        try:
            found = q_actions.list_page(engine, who.actor, filters, after, 50)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        return render(
            request,
            who,
            "quarantine.html",
            items=found.items,
            next=found.next,
            filters=filters,
            query=filters.as_query(),
            domains=_domains(console, who),
        )

    @pages.get("/quarantine/{item_id}", response_class=HTMLResponse)
    def quarantine_item(item_id: str, request: Request):
        who = auth.from_cookie(request)
        found = q_actions.verdict(engine, who.actor, item_id)
        view = message_view.read(q_actions.original(engine, who.actor, item_id))
        return render(
            request,
            who,
            "message.html",
            item=found["item"],
            recipients=found["recipients"],
            message=found["message"],
            view=view,
            may_download=who.user.role in ATTACHMENT_ROLES,
        )

    @pages.get("/quarantine/{item_id}/html")
    def quarantine_html(item_id: str, request: Request):
        """The sanitised HTML alone, for the sandboxed iframe: nothing may load or run."""
        who = auth.from_cookie(request)
        view = message_view.read(q_actions.original(engine, who.actor, item_id))
        body = "<!doctype html><meta charset=utf-8><body>" + (view.html or "") + "</body>"
        return HTMLResponse(
            body,
            headers={
                "Content-Security-Policy": FRAME_CSP + "; sandbox",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    @pages.get("/quarantine/{item_id}/parts/{part_id}")
    def quarantine_part(item_id: str, part_id: str, request: Request):
        """An attachment, as a download only (never shown in the browser)."""
        who = auth.from_cookie(request)
        who.actor.require_role(*ATTACHMENT_ROLES)
        part = message_view.part_bytes(q_actions.original(engine, who.actor, item_id), part_id)
        if part is None:
            raise NotFound(f"{item_id}: no part {part_id}")
        name = "".join(c for c in (part.filename or f"part-{part_id}") if c.isalnum() or c in "._-")
        return Response(
            part.payload,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{name or "attachment"}"',
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    @pages.post("/quarantine/bulk")
    async def quarantine_bulk(request: Request):
        who, form = await posted(request)
        op = str(form.get("op") or "")
        ids = [str(i) for i in form.get("ids") or []]
        everything = form.get("scope") == "filter"
        result = q_actions.bulk(
            engine,
            who.actor,
            op,
            None if everything else ids,
            _filters_from(form) if everything else None,
            false_positive=form.get("not_false_positive") is None,
            lists_changed=console.lists_changed,
        )
        return render(request, who, "bulk.html", result=result)

    @pages.post("/quarantine/{item_id}/release")
    async def quarantine_release(item_id: str, request: Request):
        who, form = await posted(request)
        q_actions.release(
            engine, who.actor, item_id, false_positive=form.get("not_false_positive") is None
        )
        return back(f"/quarantine/{item_id}")

    @pages.post("/quarantine/{item_id}/delete")
    async def quarantine_delete(item_id: str, request: Request):
        who, _ = await posted(request)
        q_actions.delete(engine, who.actor, item_id)
        return back("/quarantine")

    @pages.post("/quarantine/{item_id}/confirm-spam")
    async def quarantine_confirm(item_id: str, request: Request):
        who, form = await posted(request)
        block = str(form.get("block") or "") or None
        q_actions.confirm_spam(
            engine, who.actor, item_id, block=block, lists_changed=console.lists_changed
        )
        return back(f"/quarantine/{item_id}")

    return pages


def _domains(console: Console, who: Who) -> list[str]:
    if who.actor.all_domains:
        return list(console.settings.domains.accept)
    return list(who.actor.domains)


def _date(text: Any, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise BadInput(f"{name}={text!r}: a date like 2026-12-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _score(text: Any, name: str) -> float | None:
    if text in (None, ""):
        return None
    try:
        return float(str(text))
    except ValueError:
        raise BadInput(f"{name}={text!r}: a number") from None


def _filters_from(values: Any) -> Filters:
    status = values.get("status") or "held"

    def text(name: str) -> str | None:
        return str(values.get(name) or "").strip() or None

    return Filters(
        domain=text("domain"),
        status=None if status == "any" else str(status),
        kind=text("kind"),
        reason=text("reason"),
        sender=text("sender"),
        recipient=text("recipient"),
        subject=text("subject"),
        since=_date(values.get("since"), "since"),
        until=_date(values.get("until"), "until"),
        min_score=_score(values.get("min_score"), "min_score"),
        max_score=_score(values.get("max_score"), "max_score"),
    )


def _filters(request: Request) -> Filters:
    return _filters_from(request.query_params)
