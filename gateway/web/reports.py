"""A domain's monthly service-agreement report in the console, as a page and as JSON.

The same report as `mailwarden report --domain D` (gateway/report/build.py): an
operator reads any served domain's, a domain admin only their own (another
domain, or one the gateway does not serve, is a 404). The page is the books' own
self-contained html (inline styles and SVG, no script), served under a CSP that
allows nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway.actions.common import SETTINGS_ROLES, Actor, BadInput, NotFound
from gateway.config import ConfigError
from gateway.report.build import build_report
from gateway.report.render_html import render_html
from gateway.web.context import Console

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"


def domain_report(console: Console, actor: Actor, domain: str, month: str | None) -> dict:
    actor.require_role(*SETTINGS_ROLES)
    name = actor.require_domain(domain)
    if name not in console.settings.domains.accept:
        raise NotFound(f"{domain}: no such domain")
    try:
        return build_report(
            console.engine, console.settings, month or datetime.now(UTC).strftime("%Y-%m"), name
        )
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def build(console: Console) -> APIRouter:
    router = APIRouter()
    auth = console.auth

    @router.get("/domains/{domain}/report", response_class=HTMLResponse)
    def report_page(domain: str, request: Request, month: str | None = None):
        """The month's report (default: this month so far) as a printable page."""
        who = auth.from_cookie(request)
        report = domain_report(console, who.actor, domain, month)
        return HTMLResponse(render_html(report), headers={"Content-Security-Policy": REPORT_CSP})

    @router.get("/api/domains/{domain}/report")
    def report_json(domain: str, request: Request, month: str | None = None) -> dict[str, Any]:
        """The month's report as the JSON of `mailwarden report --format json`."""
        who = auth.from_bearer(request)
        return domain_report(console, who.actor, domain, month)

    return router
