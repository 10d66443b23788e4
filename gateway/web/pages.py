"""The console's pages: server-rendered forms that work without JavaScript.

Every POST carries the session's CSRF token (a hidden field); every object is
looked up through gateway/actions, so a foreign domain's object is a 404 here too.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile as StarletteUpload

from gateway.actions import lists as list_actions
from gateway.actions import policy as policy_actions
from gateway.actions import quarantine as q_actions
from gateway.actions import queue as queue_actions
from gateway.actions import report_addresses as report_actions
from gateway.actions import rules as rule_actions
from gateway.actions import thresholds as threshold_actions
from gateway.actions import users as user_actions
from gateway.actions.common import (
    ATTACHMENT_ROLES,
    BadInput,
    NotFound,
)
from gateway.pipeline.dry_run import MAX_MESSAGE_BYTES
from gateway.store import audit, sessions, users
from gateway.store.quarantine_query import Filters
from gateway.web import message_view
from gateway.web.auth import COOKIE, LOGIN_COOKIE, CsrfRejected, Who, client_address
from gateway.web.context import Console

FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'"


def build(console: Console) -> APIRouter:
    pages = APIRouter()
    auth = console.auth
    engine = console.engine

    def render(request: Request, who: Who | None, name: str, status: int = 200, **values: Any):
        return console.templates.TemplateResponse(
            request,
            name,
            {"who": who, "csrf": who.session.csrf if who else "", **values},
            status_code=status,
        )

    async def form_of(
        request: Request, who: Who, max_part_size: int = 1024 * 1024
    ) -> dict[str, Any]:
        form = await request.form(max_part_size=max_part_size)
        auth.check_csrf(who, str(form.get("csrf") or ""))
        return {k: form.getlist(k) if k == "ids" else form.get(k) for k in form}

    async def posted(request: Request, max_part_size: int = 1024 * 1024) -> tuple[Who, dict]:
        """Who sent a form, and its fields once its CSRF token checked out."""
        who = auth.from_cookie(request)
        return who, await form_of(request, who, max_part_size)

    def back(path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303)

    # --- logging in and out ------------------------------------------------------------
    @pages.get("/login", response_class=HTMLResponse)
    def login_form(request: Request):
        cookie, token = auth.login_token()
        response = render(request, None, "login.html", login_token=token, error=None)
        _login_cookie(response, cookie, console)
        return response

    @pages.post("/login", response_class=HTMLResponse)
    async def login(request: Request):
        form = await request.form()
        auth.check_login_token(request.cookies.get(LOGIN_COOKIE), str(form.get("csrf") or ""))
        name, password = str(form.get("username") or ""), str(form.get("password") or "")
        got = auth.login(name, password, client_address(request), sessions.WEB)
        if got is None:
            cookie, token = auth.login_token()
            response = render(
                request,
                None,
                "login.html",
                status=401,
                login_token=token,
                error="Wrong user name or password.",
            )
            _login_cookie(response, cookie, console)
            return response
        secret, _ = got
        response = back("/")
        response.set_cookie(
            COOKIE,
            auth.cookie_value(secret),
            max_age=int(console.settings.web.session_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=console.settings.web.secure_cookies,
            path="/",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @pages.post("/logout")
    async def logout(request: Request):
        who, _ = await posted(request)
        sessions.end(engine, who.secret)
        response = back("/login")
        response.delete_cookie(COOKIE, path="/")
        return response

    @pages.get("/", response_class=HTMLResponse)
    def home(request: Request):
        who = auth.from_cookie(request)
        if who.user.role == users.DOMAIN_ADMIN:
            return back(f"/domains/{who.user.domains[0]}/lists")
        return back("/quarantine")

    @pages.get("/password", response_class=HTMLResponse)
    def password_form(request: Request):
        who = auth.from_cookie(request)
        return render(request, who, "password.html", error=None)

    @pages.post("/password", response_class=HTMLResponse)
    async def password_change(request: Request):
        who, form = await posted(request)
        if users.authenticate(engine, who.user.name, str(form.get("current") or "")) is None:
            return render(
                request, who, "password.html", 422, error="The current password is wrong."
            )
        if form.get("new") != form.get("again"):
            differ = "The two new passwords differ."
            return render(request, who, "password.html", 422, error=differ)
        try:
            user_actions.change_password(engine, who.actor, who.user.name, str(form.get("new")))
        except users.UserError as exc:
            return render(request, who, "password.html", 422, error=str(exc))
        response = back("/login")
        response.delete_cookie(COOKIE, path="/")
        return response

    # --- quarantine ----------------------------------------------------------------------
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

    # --- a domain's settings -----------------------------------------------------------
    @pages.get("/domains/{domain}/lists", response_class=HTMLResponse)
    def lists_page(domain: str, request: Request):
        who = auth.from_cookie(request)
        rows = list_actions.entries(engine, who.actor, domain)
        return render(request, who, "lists.html", domain=domain.lower(), entries=rows, error=None)

    @pages.post("/domains/{domain}/lists")
    async def lists_add(domain: str, request: Request):
        who, form = await posted(request)
        try:
            list_actions.add(
                engine,
                who.actor,
                domain,
                str(form.get("list") or ""),
                str(form.get("value") or ""),
                kind=str(form.get("kind") or "") or None,
                reason=str(form.get("reason") or ""),
                lists_changed=console.lists_changed,
            )
        except BadInput as exc:
            rows = list_actions.entries(engine, who.actor, domain)
            return render(
                request, who, "lists.html", 422, domain=domain.lower(), entries=rows, error=str(exc)
            )
        return back(f"/domains/{domain.lower()}/lists")

    @pages.post("/domains/{domain}/lists/remove")
    async def lists_remove(domain: str, request: Request):
        who, form = await posted(request)
        list_actions.remove(
            engine,
            who.actor,
            domain,
            str(form.get("list") or ""),
            str(form.get("value") or ""),
            kind=str(form.get("kind") or "") or None,
            lists_changed=console.lists_changed,
        )
        return back(f"/domains/{domain.lower()}/lists")

    @pages.get("/domains/{domain}/policies", response_class=HTMLResponse)
    def policies_page(domain: str, request: Request):
        who = auth.from_cookie(request)
        name = who.actor.require_domain(domain)
        rows = [
            policy_actions.effective(engine, who.actor, row["target"])
            for row in _policy_rows(engine, name)
        ]
        default = policy_actions.effective(engine, who.actor, f"@{name}")
        return render(
            request, who, "policies.html", domain=name, rows=rows, default=default, error=None
        )

    @pages.post("/domains/{domain}/policies")
    async def policies_put(domain: str, request: Request):
        who, form = await posted(request)
        name = who.actor.require_domain(domain)
        mailbox = str(form.get("mailbox") or "").strip()
        target = f"@{name}" if mailbox in ("", "*", "@") else f"{mailbox}@{name}"
        policy_actions.put(
            engine,
            who.actor,
            target,
            enabled=_on_off(form.get("antivirus")),
            mode=str(form.get("mode") or "") or None,
            keep_original=_on_off(form.get("keep_original")),
            changed=console.policies_changed,
        )
        return back(f"/domains/{name}/policies")

    @pages.get("/domains/{domain}/rules", response_class=HTMLResponse)
    def rules_page(domain: str, request: Request):
        who = auth.from_cookie(request)
        found = rule_actions.current(engine, who.actor, console.rules_checker, domain)
        return rules_view(request, who, found, found["text"], [], None)

    def rules_view(
        request, who, found, draft: str, errors: list, saved, status: int = 200, **trial: Any
    ):
        by_line: dict[int, list[str]] = {}
        for e in errors:
            by_line.setdefault(int(e["line"]), []).append(e["message"])
        lines = [(n, text, by_line.get(n, [])) for n, text in enumerate(draft.split("\n"), 1)]
        stray = [m for n, ms in by_line.items() if n > len(lines) or n < 1 for m in ms]
        return render(
            request,
            who,
            "rules.html",
            status,
            domain=found["domain"],
            current=found,
            draft=draft,
            lines=lines,
            errors=errors,
            stray=stray,
            saved=saved,
            history=rule_actions.history(engine, who.actor, found["domain"]),
            trial=trial.get("trial"),
            trial_error=trial.get("trial_error"),
            trial_form=trial.get("trial_form") or {},
            max_message=MAX_MESSAGE_BYTES,
        )

    @pages.post("/domains/{domain}/rules", response_class=HTMLResponse)
    async def rules_save(domain: str, request: Request):
        who, form = await posted(request)
        found = rule_actions.current(engine, who.actor, console.rules_checker, domain)
        draft = str(form.get("text") or "").replace("\r\n", "\n")
        try:
            saved = rule_actions.save(
                engine,
                who.actor,
                console.rules_checker,
                domain,
                draft,
                comment=str(form.get("comment") or ""),
                changed=console.rules_changed,
            )
        except rule_actions.RulesRejected as exc:
            return rules_view(request, who, found, draft, exc.errors, None, 422)
        found = rule_actions.current(engine, who.actor, console.rules_checker, domain)
        return rules_view(request, who, found, found["text"], [], saved)

    @pages.post("/domains/{domain}/rules/test", response_class=HTMLResponse)
    async def rules_test(domain: str, request: Request):
        """Dry run of the draft against a pasted or uploaded message; nothing is saved."""
        who, form = await posted(request, MAX_MESSAGE_BYTES + 64 * 1024)
        found = rule_actions.current(engine, who.actor, console.rules_checker, domain)
        draft = str(form.get("text") or "").replace("\r\n", "\n")
        upload = form.get("upload")
        if isinstance(upload, StarletteUpload) and upload.filename:
            raw = await upload.read(MAX_MESSAGE_BYTES + 1)
        else:
            raw = str(form.get("message") or "").encode("utf-8", "surrogateescape")
        kept = {
            "message": str(form.get("message") or ""),
            "mail_from": str(form.get("mail_from") or ""),
            "rcpts": str(form.get("rcpts") or ""),
            "client_ip": str(form.get("client_ip") or ""),
        }
        try:
            trial = await rule_actions.dry_run(
                engine,
                who.actor,
                console.rules_checker,
                console.dry_runs,
                domain,
                draft,
                raw,
                mail_from=kept["mail_from"].strip() or None,
                rcpts=kept["rcpts"].replace(",", " ").split(),
                client_ip=kept["client_ip"],
            )
        except rule_actions.RulesRejected as exc:
            return rules_view(request, who, found, draft, exc.errors, None, 422, trial_form=kept)
        except BadInput as exc:
            return rules_view(
                request, who, found, draft, [], None, exc.status,
                trial_error=str(exc), trial_form=kept,
            )  # fmt: skip
        return rules_view(request, who, found, draft, [], None, trial=trial, trial_form=kept)

    @pages.post("/domains/{domain}/rules/rollback", response_class=HTMLResponse)
    async def rules_rollback(domain: str, request: Request):
        who, form = await posted(request)
        try:
            version = int(str(form.get("version") or ""))
        except ValueError:
            raise BadInput("version: a number") from None
        saved = rule_actions.rollback(
            engine,
            who.actor,
            console.rules_checker,
            domain,
            version,
            changed=console.rules_changed,
        )
        found = rule_actions.current(engine, who.actor, console.rules_checker, domain)
        return rules_view(request, who, found, found["text"], [], saved)

    @pages.get("/domains/{domain}/thresholds", response_class=HTMLResponse)
    def thresholds_page(domain: str, request: Request):
        who = auth.from_cookie(request)
        found = threshold_actions.show(engine, who.actor, console.rules_checker, domain)
        return render(request, who, "thresholds.html", domain=found["domain"], t=found, error=None)

    @pages.post("/domains/{domain}/thresholds", response_class=HTMLResponse)
    async def thresholds_put(domain: str, request: Request):
        who, form = await posted(request)
        found = threshold_actions.show(engine, who.actor, console.rules_checker, domain)
        try:
            values = {
                key: threshold_actions.typed(key, text)
                for key in threshold_actions.THRESHOLD_KEYS
                if (text := str(form.get(key) or "").strip())
            }
            saved = threshold_actions.put(
                engine,
                who.actor,
                console.rules_checker,
                domain,
                values,
                changed=console.rules_changed,
            )
        except BadInput as exc:
            return render(
                request, who, "thresholds.html", exc.status, domain=found["domain"], t=found,
                error=str(exc), typed=form,
            )  # fmt: skip
        return render(
            request, who, "thresholds.html", domain=saved["domain"], t=saved, error=None, saved=True
        )

    @pages.get("/domains/{domain}/report-addresses", response_class=HTMLResponse)
    def report_addresses_page(domain: str, request: Request):
        who = auth.from_cookie(request)
        found = report_actions.show(engine, who.actor, console.rules_checker, domain)
        return render(request, who, "report_addresses.html", domain=found["domain"], r=found)

    @pages.post("/domains/{domain}/report-addresses", response_class=HTMLResponse)
    async def report_addresses_put(domain: str, request: Request):
        who, form = await posted(request)
        found = report_actions.show(engine, who.actor, console.rules_checker, domain)
        values = {
            kind: report_actions.typed(kind, text)
            for kind in report_actions.REPORT_KINDS
            if (text := str(form.get(kind) or "").strip())
        }
        try:
            saved = report_actions.put(
                engine,
                who.actor,
                console.rules_checker,
                domain,
                values,
                changed=console.rules_changed,
            )
        except BadInput as exc:
            return render(
                request, who, "report_addresses.html", exc.status, domain=found["domain"],
                r=found, error=str(exc), typed=form,
            )  # fmt: skip
        return render(
            request, who, "report_addresses.html", domain=saved["domain"], r=saved, saved=True
        )

    # --- operators and admins ----------------------------------------------------------
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


def _login_cookie(response: Response, value: str, console: Console) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        value,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=console.settings.web.secure_cookies,
        path="/login",
    )


def _on_off(value: Any) -> bool | None:
    return {"on": True, "off": False}.get(str(value or ""))


def _policy_rows(engine, domain: str) -> list[dict[str, Any]]:
    from gateway.store import av_policy

    return [r for r in av_policy.list_rows(engine, domain) if not r["target"].startswith("@")]


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


__all__ = ["CsrfRejected", "build"]
