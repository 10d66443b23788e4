"""Console users: a name, a role, the domains they may see, an argon2 password hash.

Operators see every domain; domain admins and abuse staff only the domains listed
for them (the security boundary of the console: anything else answers 404). Users
live in the shared database so every node's console knows the same people.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, String, Table, delete, select, update
from sqlalchemy.engine import Engine

from gateway.store import passwords
from gateway.store.db import metadata

OPERATOR, DOMAIN_ADMIN, ABUSE_STAFF = "operator", "domain-admin", "abuse-staff"
ROLES = (OPERATOR, DOMAIN_ADMIN, ABUSE_STAFF)
MIN_PASSWORD = passwords.MIN_LENGTH
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")

users = Table(
    "users",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("domains", JSON, nullable=False),  # [] for operators: they see all
    Column("password_hash", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("password_changed_at", DateTime(timezone=True), nullable=False),
)


class UserError(ValueError):
    """A user that cannot be made or changed as asked: said in words."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    domains: tuple[str, ...]
    password_changed_at: datetime

    @property
    def all_domains(self) -> bool:
        return self.role == OPERATOR

    def may_see(self, domain: str | None) -> bool:
        """Whether this user may see an object of `domain` (None: not of one domain)."""
        if self.all_domains:
            return True
        return domain is not None and domain.lower() in self.domains

    def visible(self, domains: Sequence[str]) -> list[str]:
        return [d for d in domains if self.may_see(d)]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "domains": list(self.domains)}


def _user(row: Any) -> User:
    changed = row.password_changed_at
    if changed.tzinfo is None:  # SQLite hands back naive datetimes
        changed = changed.replace(tzinfo=UTC)
    return User(row.name, row.role, tuple(row.domains or ()), changed)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(
            f"{name!r}: a user name is 1-128 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    try:
        return passwords.check(password)
    except passwords.PasswordTooShort as exc:
        raise UserError(str(exc)) from None


def normalise_domains(role: str, domains: Sequence[str]) -> list[str]:
    if role not in ROLES:
        raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
    cleaned = sorted({d.strip().lower().rstrip(".") for d in domains if d.strip()})
    for d in cleaned:
        if "." not in d or "@" in d or any(c.isspace() for c in d):
            raise UserError(f"{d!r} is not a domain name")
    if role == OPERATOR and cleaned:
        raise UserError("an operator sees every domain: give no --domain")
    if role != OPERATOR and not cleaned:
        raise UserError(f"a {role} needs at least one --domain")
    return cleaned


def add(engine: Engine, name: str, role: str, domains: Sequence[str], password: str) -> User:
    check_name(name)
    cleaned = normalise_domains(role, domains)
    check_password(password)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if conn.execute(select(users.c.name).where(users.c.name == name)).first():
            raise UserError(f"{name}: a user of that name exists")
        conn.execute(
            users.insert().values(
                name=name,
                role=role,
                domains=cleaned,
                password_hash=passwords.hash_password(password),
                created_at=now,
                password_changed_at=now,
            )
        )
    return User(name, role, tuple(cleaned), now)


def remove(engine: Engine, name: str) -> User | None:
    """Remove a user; the user as it was, or None if there was none."""
    with engine.begin() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            return None
        conn.execute(delete(users).where(users.c.name == name))
    return _user(row)


def set_password(engine: Engine, name: str, password: str) -> bool:
    """A new password (sessions made before it stop working); False: no such user."""
    check_password(password)
    with engine.begin() as conn:
        changed = conn.execute(
            update(users)
            .where(users.c.name == name)
            .values(
                password_hash=passwords.hash_password(password),
                password_changed_at=datetime.now(UTC),
            )
        ).rowcount
    return changed == 1


def get(engine: Engine, name: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first()
    return None if row is None else _user(row)


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        return [_user(r) for r in conn.execute(select(users).order_by(users.c.name))]


def authenticate(engine: Engine, name: str, password: str) -> User | None:
    """The user if the password is theirs, else None (same cost for unknown names)."""
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first()
    if not passwords.verify(row.password_hash if row else None, password) or row is None:
        return None
    if passwords.needs_rehash(row.password_hash):
        with engine.begin() as conn:
            conn.execute(
                update(users)
                .where(users.c.name == name)
                .values(password_hash=passwords.hash_password(password))
            )
    return _user(row)
