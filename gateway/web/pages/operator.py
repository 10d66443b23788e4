"""Pages for operators (and, where their domains allow, domain admins): the audit
trail, the nodes, the delivery queue and its controls, the console's users."""

from __future__ import annotations

import asyncio
import functools

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway.actions import queue as queue_actions
from gateway.actions import users as user_actions
from gateway.actions.common import BadInput
from gateway.store import audit, users
from gateway.web.pages.kit import Kit


def build(kit: Kit) -> APIRouter:
    pages = APIRouter()
    console, auth, engine = kit.console, kit.auth, kit.engine
    render, posted, back = kit.render, kit.posted, kit.back
    form_of = kit.form_of

    @pages.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request):
        who = auth.from_cookie(request)
        who.actor.require_role(users.OPERATOR, users.DOMAIN_ADMIN)
        before = request.query_params.get("before")
        try:
            before_id = int(before) if before else None
        except ValueError:
            raise BadInput(f"before={before!r}: not a row number") from None
        domains = None if who.actor.all_domains else list(who.actor.domains)
        rows = audit.entries(engine, domains, before_id=before_id, limit=100)
        return render(request, who, "audit.html", rows=rows)

    @pages.get("/nodes", response_class=HTMLResponse)
    def nodes_page(request: Request):
        who = auth.from_cookie(request)
        found = queue_actions.nodes(engine, who.actor, console.settings)
        return render(request, who, "nodes.html", nodes=found)

    @pages.get("/queue", response_class=HTMLResponse)
    def queue_page(request: Request):
        who = auth.from_cookie(request)
        found = queue_actions.queue(engine, who.actor, console.settings)
        return render(request, who, "queue.html", q=found, answer=None)

    @pages.post("/queue/control", response_class=HTMLResponse)
    async def queue_control(request: Request):
        who, form = await posted(request)
        op, job = str(form.get("op") or ""), str(form.get("job") or "") or None
        node = str(form.get("node") or "") or None
        answer = await asyncio.to_thread(
            functools.partial(queue_actions.control, node=node),
            engine,
            who.actor,
            console.settings,
            op,
            job,
        )
        found = queue_actions.queue(engine, who.actor, console.settings)
        return render(request, who, "queue.html", q=found, answer=answer)

    @pages.get("/users", response_class=HTMLResponse)
    def users_page(request: Request):
        who = auth.from_cookie(request)
        who.actor.require_role(users.OPERATOR)
        return render(request, who, "users.html", users=users.list_users(engine), error=None)

    @pages.post("/users")
    async def users_add(request: Request):
        who = auth.from_cookie(request)
        who.actor.require_role(users.OPERATOR)
        form = await form_of(request, who)
        domains = str(form.get("domains") or "").replace(",", " ").split()
        try:
            user_actions.add_user(
                engine,
                who.actor,
                str(form.get("name") or ""),
                str(form.get("role") or ""),
                domains,
                str(form.get("password") or ""),
            )
        except users.UserError as exc:
            found = users.list_users(engine)
            return render(request, who, "users.html", 422, users=found, error=str(exc))
        return back("/users")

    @pages.post("/users/{name}/remove")
    async def users_remove(name: str, request: Request):
        who = auth.from_cookie(request)
        who.actor.require_role(users.OPERATOR)
        await form_of(request, who)
        user_actions.remove_user(engine, who.actor, name)
        return back("/users")

    return pages
