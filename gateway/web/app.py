"""The console's FastAPI application: pages, JSON API, static files, error answers.

`create_app(settings)` is all a server needs (`mailwarden web`, or `mailwarden
serve` with `[web] listen`). Pages answer errors as small HTML pages, the API as
JSON bodies; both with the same status codes.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException

from gateway.actions.common import ActionError
from gateway.config import Settings
from gateway.pipeline import rules_db
from gateway.pipeline.dry_run import Bench
from gateway.store import passwords
from gateway.web import api, pages, reports
from gateway.web.auth import Auth, CsrfRejected, RateLimited, Unauthorized
from gateway.web.context import HERE, Console

log = logging.getLogger(__name__)

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def signing_key(settings: Settings) -> str:
    """The cookie-signing key: [web] secret_file, shared by every node; else a key of
    this process (sessions then end when it restarts)."""
    path = settings.web.secret_file
    if path is not None:
        return path.read_text().strip()
    log.warning("[web] secret_file is not set: console sessions end when this process stops")
    return secrets.token_urlsafe(32)


def create_app(
    settings: Settings,
    engine: Engine,
    lists_changed: Callable[[], None] | None = None,
    rules_changed: Callable[[], None] | None = None,
    chain: Any = None,
    policies_changed: Callable[[], None] | None = None,
) -> FastAPI:
    """`chain`: the gateway's filter chain when the console runs beside it (dry runs
    then share its loaded classifier model instead of loading their own)."""
    passwords.warm()  # before the first login, so an unknown name costs what a known one does
    app = FastAPI(
        title="mailwarden console API",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    console = Console(
        engine,
        settings,
        Auth(engine, settings.web, signing_key(settings)),
        templates,
        lists_changed or (lambda: None),
        rules_db.checker(settings),
        rules_changed or (lambda: None),
        Bench(settings, engine, chain),
        policies_changed or (lambda: None),
    )
    app.state.console = console
    routers = [api.build(console), *pages.build(console), reports.build(console)]
    for router in routers:
        app.include_router(router)
    app.state.routers = routers
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def answer(request: Request, status: int, message: str, **more: Any) -> Response:
        if request.url.path.startswith("/api/"):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            body = {"error": message, **more}
            return JSONResponse(body, status_code=status, headers=headers)
        return templates.TemplateResponse(
            request,
            "error.html",
            {"who": None, "csrf": "", "status": status, "message": message},
            status_code=status,
        )

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> Response:
        return answer(request, 401, str(exc))

    @app.exception_handler(CsrfRejected)
    async def csrf(request: Request, exc: CsrfRejected) -> Response:
        return answer(request, 403, str(exc))

    @app.exception_handler(RateLimited)
    async def limited(request: Request, exc: RateLimited) -> Response:
        return answer(request, 429, str(exc))

    @app.exception_handler(ActionError)
    async def refused(request: Request, exc: ActionError) -> Response:
        errors = getattr(exc, "errors", None)  # rules: every error with its line
        if errors is not None:
            return answer(request, exc.status, str(exc), errors=errors)
        return answer(request, exc.status, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return answer(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            errors = [
                {"where": ".".join(str(p) for p in e["loc"]), "error": e["msg"]}
                for e in exc.errors()
            ]
            return JSONResponse({"error": "invalid request", "details": errors}, status_code=422)
        return answer(request, 422, "invalid request")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def routes_of(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, for the authorisation table's coverage test."""
    found: set[tuple[str, str]] = set()
    routes = list(app.routes) + [r for router in app.state.routers for r in router.routes]
    for route in routes:
        methods = getattr(route, "methods", None) or ()
        path = getattr(route, "path", None)
        if path is None:
            continue
        found.update((m, path) for m in methods if m != "HEAD")
    return found


__all__ = ["HTMLResponse", "create_app", "routes_of"]
