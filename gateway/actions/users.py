"""Adding, removing and re-keying console users, each written to the audit log."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine

from gateway.actions.common import Actor, NotFound
from gateway.store import audit, sessions, users
from gateway.store.users import OPERATOR, User


def add_user(
    engine: Engine, actor: Actor, name: str, role: str, domains: Sequence[str], password: str
) -> User:
    actor.require_role(OPERATOR)
    user = users.add(engine, name, role, domains, password)
    audit.record(
        engine,
        actor=actor.name,
        action="users.add",
        object_type="user",
        object_id=name,
        after=user.as_json(),
        address=actor.address,
    )
    return user


def remove_user(engine: Engine, actor: Actor, name: str) -> User:
    actor.require_role(OPERATOR)
    user = users.remove(engine, name)
    if user is None:
        raise NotFound(f"{name}: no such user")
    sessions.end_all(engine, name)
    audit.record(
        engine,
        actor=actor.name,
        action="users.remove",
        object_type="user",
        object_id=name,
        before=user.as_json(),
        address=actor.address,
    )
    return user


def change_password(engine: Engine, actor: Actor, name: str, password: str) -> None:
    """Operators change anyone's password, a user their own; every session of that user
    ends (the web console logs the user in again afterwards)."""
    if actor.name != name:
        actor.require_role(OPERATOR)
    if not users.set_password(engine, name, password):
        raise NotFound(f"{name}: no such user")
    sessions.end_all(engine, name)
    audit.record(
        engine,
        actor=actor.name,
        action="users.passwd",
        object_type="user",
        object_id=name,
        address=actor.address,
    )
