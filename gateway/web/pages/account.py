"""Signing in and out, the home redirect, changing one's own password."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gateway.actions import users as user_actions
from gateway.store import sessions, users
from gateway.web.auth import COOKIE, LOGIN_COOKIE, client_address
from gateway.web.context import Console
from gateway.web.pages.kit import Kit


def build(kit: Kit) -> APIRouter:
    pages = APIRouter()
    console, auth, engine = kit.console, kit.auth, kit.engine
    render, posted, back = kit.render, kit.posted, kit.back

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
