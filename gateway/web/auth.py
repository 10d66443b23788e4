"""Who is asking: session cookies and bearer tokens, CSRF tokens, the login rate limit.

The session cookie carries a random secret, signed (itsdangerous) so a forged or
truncated cookie is refused before the database is asked; HttpOnly, SameSite=Strict.
The database row (gateway/store/sessions.py) holds the user, the expiry and the
CSRF token every form must send back. Bearer tokens (POST /api/token) are rows too,
so the API needs no CSRF token: a browser never adds an Authorization header itself.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.engine import Engine

from gateway.actions.common import Actor
from gateway.config import WebSettings
from gateway.store import sessions, users

COOKIE = "mw_session"
LOGIN_COOKIE = "mw_login"  # the CSRF token of the login form, before any session


class Unauthorized(Exception):
    """No valid session or token: 401 (pages offer the login form)."""


class CsrfRejected(Exception):
    """A state-changing form without its session's CSRF token: 403."""


class RateLimited(Exception):
    """Too many failed logins for this name or from this address: 429."""


@dataclass(frozen=True)
class Who:
    """The person behind a request: their user, the actor actions see, their session."""

    user: users.User
    actor: Actor
    session: sessions.Session
    secret: str


class Auth:
    def __init__(self, engine: Engine, settings: WebSettings, key: str) -> None:
        self.engine = engine
        self.settings = settings
        self.signer = URLSafeSerializer(key, salt="mailwarden-session")
        self.login_signer = URLSafeSerializer(key, salt="mailwarden-login")

    # --- logging in ---------------------------------------------------------------
    def check_rate(self, name: str, address: str) -> None:
        limit = sessions.LoginLimit(
            self.settings.login_max_failures_user,
            self.settings.login_max_failures_address,
            timedelta(minutes=self.settings.login_window_minutes),
        )
        if limit.exceeded(self.engine, name, address):
            raise RateLimited("too many failed logins: wait a few minutes and try again")

    def login(self, name: str, password: str, address: str, kind: str) -> tuple[str, Who] | None:
        """(secret, who) for a right password, else None; every attempt is counted."""
        self.check_rate(name, address)
        user = users.authenticate(self.engine, name, password)
        sessions.note_attempt(self.engine, name, address, user is not None)
        if user is None:
            return None
        lifetime = timedelta(
            hours=self.settings.session_hours if kind == sessions.WEB else self.settings.token_hours
        )
        secret, session = sessions.create(self.engine, user.name, kind, lifetime, address)
        return secret, Who(user, Actor.of(user, address), session, secret)

    def cookie_value(self, secret: str) -> str:
        return self.signer.dumps(secret)

    def login_token(self) -> tuple[str, str]:
        """(cookie value, form value) for the login form's CSRF check."""
        token = secrets.token_urlsafe(18)
        return self.login_signer.dumps(token), token

    def check_login_token(self, cookie: str | None, form: str | None) -> None:
        try:
            expected = self.login_signer.loads(cookie or "")
        except BadSignature:
            raise CsrfRejected("the login form expired: load it again") from None
        if not form or not hmac.compare_digest(str(expected), form):
            raise CsrfRejected("the login form expired: load it again")

    # --- each request ---------------------------------------------------------------
    def from_cookie(self, request: Request) -> Who:
        raw = request.cookies.get(COOKIE)
        if not raw:
            raise Unauthorized("log in first")
        try:
            secret = str(self.signer.loads(raw))
        except BadSignature:
            raise Unauthorized("log in first") from None
        idle = timedelta(minutes=self.settings.idle_minutes)
        return self._who(secret, sessions.WEB, _address(request), idle)

    def from_bearer(self, request: Request) -> Who:
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("send Authorization: Bearer TOKEN (POST /api/token)")
        return self._who(secret.strip(), sessions.API, _address(request), None)

    def _who(self, secret: str, kind: str, address: str, idle: timedelta | None) -> Who:
        session = sessions.lookup(self.engine, secret, kind, idle)
        if session is None:
            raise Unauthorized("the session has expired: log in again")
        user = users.get(self.engine, session.username)
        if user is None or session.created_at < user.password_changed_at:
            sessions.end(self.engine, secret)
            raise Unauthorized("the session has ended: log in again")
        return Who(user, Actor.of(user, address), session, secret)

    def check_csrf(self, who: Who, token: str | None) -> None:
        if not token or not hmac.compare_digest(who.session.csrf, token):
            raise CsrfRejected("the form's security token is missing or stale: reload the page")


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def client_address(request: Request) -> str:
    return _address(request)
