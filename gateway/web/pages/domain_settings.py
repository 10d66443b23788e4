"""A domain's settings: its lists, antivirus policies, rules (with the dry run and
rollback), spam thresholds and report addresses; each through gateway/actions, so
another domain's is a 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile as StarletteUpload

from gateway.actions import lists as list_actions
from gateway.actions import policy as policy_actions
from gateway.actions import report_addresses as report_actions
from gateway.actions import rules as rule_actions
from gateway.actions import thresholds as threshold_actions
from gateway.actions.common import BadInput
from gateway.pipeline.dry_run import MAX_MESSAGE_BYTES
from gateway.web.pages.kit import Kit


def build(kit: Kit) -> APIRouter:
    pages = APIRouter()
    console, auth, engine = kit.console, kit.auth, kit.engine
    render, posted, back = kit.render, kit.posted, kit.back

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

    def rules_key_form(
        path: str, actions: Any, keys: tuple[str, ...], template: str, name: str
    ) -> None:
        """The page of one key of a domain's rules (thresholds, report addresses): it
        shows what is in force; a post types each filled field and saves them, or shows
        the form again as typed with the error."""

        def page(domain: str, request: Request):
            who = auth.from_cookie(request)
            found = actions.show(engine, who.actor, console.rules_checker, domain)
            return render(
                request, who, template, domain=found["domain"], error=None, **{name: found}
            )

        async def save(domain: str, request: Request):
            who, form = await posted(request)
            found = actions.show(engine, who.actor, console.rules_checker, domain)
            try:
                values = {
                    key: actions.typed(key, text)
                    for key in keys
                    if (text := str(form.get(key) or "").strip())
                }
                saved = actions.put(
                    engine,
                    who.actor,
                    console.rules_checker,
                    domain,
                    values,
                    changed=console.rules_changed,
                )
            except BadInput as exc:
                return render(
                    request, who, template, exc.status, domain=found["domain"], error=str(exc),
                    typed=form, **{name: found},
                )  # fmt: skip
            return render(
                request, who, template, domain=saved["domain"], error=None, saved=True,
                **{name: saved},
            )  # fmt: skip

        pages.add_api_route(path, page, methods=["GET"], response_class=HTMLResponse)
        pages.add_api_route(path, save, methods=["POST"], response_class=HTMLResponse)

    rules_key_form(
        "/domains/{domain}/thresholds",
        threshold_actions,
        threshold_actions.THRESHOLD_KEYS,
        "thresholds.html",
        "t",
    )
    rules_key_form(
        "/domains/{domain}/report-addresses",
        report_actions,
        report_actions.REPORT_KINDS,
        "report_addresses.html",
        "r",
    )

    return pages


def _on_off(value: Any) -> bool | None:
    return {"on": True, "off": False}.get(str(value or ""))


def _policy_rows(engine, domain: str) -> list[dict[str, Any]]:
    from gateway.store import av_policy

    return [r for r in av_policy.list_rows(engine, domain) if not r["target"].startswith("@")]
