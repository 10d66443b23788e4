"""Console sessions, API tokens and login attempts, in the shared database.

A session or bearer token is a random secret; only its sha256 is stored, so a
copy of the database logs nobody in. Logging out deletes the row; a password change
ends every session made before it (users.password_changed_at). Login attempts are
rows too, so the rate limit per user and per address holds across every node; the
console and the submission port's SMTP AUTH (`service`) each count their own.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine

from gateway.store.db import metadata

WEB, API = "web", "api"
CONSOLE, SUBMISSION = "console", "submission"  # who counts a login attempt

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the secret
    Column("username", String(128), nullable=False),
    Column("kind", String(8), nullable=False),  # web | api
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("address", String(64)),
)
Index("ix_web_sessions_user", web_sessions.c.username)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("username", String(128), nullable=False),
    Column("address", String(64), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("service", String(16), nullable=False, server_default=CONSOLE),
)
Index("ix_login_attempts_user_at", login_attempts.c.username, login_attempts.c.at)
Index("ix_login_attempts_address_at", login_attempts.c.address, login_attempts.c.at)


@dataclass(frozen=True)
class Session:
    username: str
    kind: str
    csrf: str
    created_at: datetime
    expires_at: datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def create(
    engine: Engine, username: str, kind: str, lifetime: timedelta, address: str | None
) -> tuple[str, Session]:
    """A new session or token: (the secret to hand out, the session)."""
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session = Session(username, kind, secrets.token_urlsafe(24), now, now + lifetime)
    with engine.begin() as conn:
        conn.execute(
            web_sessions.insert().values(
                id=_digest(secret),
                username=username,
                kind=kind,
                csrf=session.csrf,
                created_at=now,
                last_seen=now,
                expires_at=session.expires_at,
                address=address,
            )
        )
    return secret, session


def lookup(engine: Engine, secret: str, kind: str, idle: timedelta | None = None) -> Session | None:
    """The live session of a secret: None when unknown, expired or idle too long
    (`idle`: web sessions end after so long without a request)."""
    now = datetime.now(UTC)
    key = _digest(secret)
    with engine.connect() as conn:
        row = conn.execute(
            select(web_sessions).where(web_sessions.c.id == key, web_sessions.c.kind == kind)
        ).first()
    if row is None:
        return None
    if _aware(row.expires_at) <= now or (idle is not None and _aware(row.last_seen) + idle <= now):
        end(engine, secret)
        return None
    if now - _aware(row.last_seen) > timedelta(seconds=30):  # not a write per request
        with engine.begin() as conn:
            conn.execute(update(web_sessions).where(web_sessions.c.id == key).values(last_seen=now))
    return Session(row.username, row.kind, row.csrf, _aware(row.created_at), _aware(row.expires_at))


def end(engine: Engine, secret: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.id == _digest(secret)))


def end_all(engine: Engine, username: str) -> int:
    with engine.begin() as conn:
        return conn.execute(
            delete(web_sessions).where(web_sessions.c.username == username)
        ).rowcount


def purge(engine: Engine, now: datetime, attempts_kept: timedelta = timedelta(days=1)) -> int:
    """Remove expired sessions and old login attempts."""
    with engine.begin() as conn:
        gone = conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now)).rowcount
        gone += conn.execute(
            delete(login_attempts).where(login_attempts.c.at < now - attempts_kept)
        ).rowcount
    return gone


@dataclass(frozen=True)
class LoginLimit:
    """At most `per_name` failed logins for one name and `per_address` from one client
    address within `window`, counted for one `service`."""

    per_name: int
    per_address: int
    window: timedelta
    service: str = CONSOLE

    def exceeded(self, engine: Engine, username: str, address: str) -> bool:
        by_user, by_address = failures(engine, username, address, self.window, self.service)
        return by_user >= self.per_name or by_address >= self.per_address


def note_attempt(
    engine: Engine, username: str, address: str, ok: bool, service: str = CONSOLE
) -> None:
    with engine.begin() as conn:
        conn.execute(
            login_attempts.insert().values(
                at=datetime.now(UTC),
                username=username[:128],
                address=address[:64],
                ok=ok,
                service=service,
            )
        )


def failures(
    engine: Engine, username: str, address: str, window: timedelta, service: str = CONSOLE
) -> tuple[int, int]:
    """Failed logins within `window`: (for this user name, from this address)."""
    since = datetime.now(UTC) - window
    la = login_attempts
    recent = (la.c.at >= since, ~la.c.ok, la.c.service == service)
    with engine.connect() as conn:
        by_user = conn.execute(
            select(func.count()).where(la.c.username == username[:128], *recent)
        ).scalar_one()
        by_address = conn.execute(
            select(func.count()).where(la.c.address == address[:64], *recent)
        ).scalar_one()
    return int(by_user), int(by_address)
