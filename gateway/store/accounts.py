"""Sending accounts of the protected server's users, and which of them are suspended.

An account that sends spam or a virus outbound (a score at or over `[outbound]
suspend_score`, a virus with `suspend_on_virus`, or more than `rate_limit` messages in
`rate_window`) is suspended automatically, or by hand (`mailwarden accounts suspend`);
its mail is then refused at MAIL until it is restored.
The current state is one row per account (a configuration table: backed up); every
change is an event row that is never updated (the ledger of suspensions) and a row
of the audit log, in the same transaction.

An account with a password (argon2id, gateway.store.passwords) may also log in on the
submission port ([outbound] submission_listen) with SMTP AUTH.
Blocking functions: call them through `Database.run` from the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from gateway.store import audit, passwords
from gateway.store.db import metadata

sending_accounts = Table(
    "sending_accounts",
    metadata,
    Column("address", String(320), primary_key=True),  # lower case
    Column("suspended", Boolean, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("changed_by", String(255), nullable=False),  # a person, or "auto:score"/"auto:rate"
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("password_hash", String(255)),  # argon2id; None: may not log in (submission)
    Column("password_changed_at", DateTime(timezone=True)),
)

account_events = Table(
    "account_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("address", String(320), nullable=False),
    Column("action", String(16), nullable=False),  # suspend | restore
    Column("reason", Text, nullable=False, default=""),
    Column("by", String(255), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("node", String(255)),
)
Index("ix_account_events_address", account_events.c.address, account_events.c.at)


@dataclass(frozen=True)
class Account:
    address: str
    suspended: bool
    reason: str
    changed_by: str
    changed_at: datetime
    has_password: bool = False


def normalise(address: str) -> str:
    value = address.strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value):
        raise ValueError(f"{address!r} is not a mailbox address (user@domain)")
    return value


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _account(row) -> Account:
    return Account(
        row.address,
        row.suspended,
        row.reason,
        row.changed_by,
        _utc(row.changed_at),
        row.password_hash is not None,
    )


def _change(
    engine: Engine, address: str, suspended: bool, reason: str, by: str, node: str | None
) -> bool:
    """Set the state; False when it already was (nothing written)."""
    address = normalise(address)
    now = datetime.now(UTC)
    values = {"suspended": suspended, "reason": reason, "changed_by": by, "changed_at": now}
    with engine.begin() as conn:
        row = conn.execute(
            select(sending_accounts).where(sending_accounts.c.address == address)
        ).first()
        if row is not None and row.suspended == suspended:
            return False
        if row is None:
            conn.execute(insert(sending_accounts).values(address=address, **values))
        else:
            conn.execute(
                update(sending_accounts)
                .where(sending_accounts.c.address == address)
                .values(**values)
            )
        action = "suspend" if suspended else "restore"
        conn.execute(
            insert(account_events).values(
                address=address, action=action, reason=reason, by=by, at=now, node=node
            )
        )
        audit.record(
            conn,
            actor=by,
            action=f"accounts.{action}",
            object_type="account",
            object_id=address,
            domain=address.rpartition("@")[2],
            before=None if row is None else {"suspended": row.suspended, "reason": row.reason},
            after={"suspended": suspended, "reason": reason},
            address=node or "cli",
            when=now,
        )
    return True


def suspend(engine: Engine, address: str, reason: str, by: str, node: str | None = None) -> bool:
    """Suspend an account; False when it already was."""
    return _change(engine, address, True, reason, by, node)


def restore(engine: Engine, address: str, reason: str, by: str, node: str | None = None) -> bool:
    """Let a suspended account send again; False when it was not suspended."""
    return _change(engine, address, False, reason, by, node)


def suspension(engine: Engine, address: str) -> Account | None:
    """The account's row when it is suspended, else None (the check at MAIL)."""
    try:
        address = normalise(address)
    except ValueError:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(sending_accounts).where(
                sending_accounts.c.address == address, sending_accounts.c.suspended.is_(True)
            )
        ).first()
    return _account(row) if row is not None else None


def listing(engine: Engine, everyone: bool = False) -> list[Account]:
    """Suspended accounts (with `everyone`, restored ones too), by address."""
    query = select(sending_accounts).order_by(sending_accounts.c.address)
    if not everyone:
        query = query.where(sending_accounts.c.suspended.is_(True))
    with engine.connect() as conn:
        return [_account(r) for r in conn.execute(query)]


def history(engine: Engine, address: str) -> list[dict]:
    """Every suspension and restoration of an account, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(account_events)
            .where(account_events.c.address == normalise(address))
            .order_by(account_events.c.id)
        ).all()
    return [{**dict(r._mapping), "at": _utc(r.at)} for r in rows]


def set_password(engine: Engine, address: str, password: str | None, by: str) -> bool:
    """Give an account a password for SMTP AUTH (None: take it away), making the
    account if there is none. Returns whether the account was new. The caller audits
    (gateway.actions.accounts)."""
    address = normalise(address)
    hashed = None if password is None else passwords.hash_password(password)
    now = datetime.now(UTC)
    values = {"password_hash": hashed, "password_changed_at": now}
    with engine.begin() as conn:
        found = conn.execute(
            select(sending_accounts.c.address).where(sending_accounts.c.address == address)
        ).first()
        if found is None:
            conn.execute(
                insert(sending_accounts).values(
                    address=address,
                    suspended=False,
                    reason="",
                    changed_by=by,
                    changed_at=now,
                    **values,
                )
            )
            return True
        conn.execute(
            update(sending_accounts).where(sending_accounts.c.address == address).values(**values)
        )
    return False


def authenticate(engine: Engine, login: str, password: str) -> Account | None:
    """The account if `password` is its password, else None. An unknown or malformed
    login costs the same argon2 time as a known one."""
    try:
        address = normalise(login)
    except ValueError:
        address = ""
    with engine.connect() as conn:
        row = conn.execute(
            select(sending_accounts).where(sending_accounts.c.address == address)
        ).first()
    stored = row.password_hash if row is not None else None
    if not passwords.verify(stored, password) or row is None or stored is None:
        return None
    if passwords.needs_rehash(stored):
        with engine.begin() as conn:
            conn.execute(
                update(sending_accounts)
                .where(sending_accounts.c.address == address)
                .values(password_hash=passwords.hash_password(password))
            )
    return _account(row)


def get(engine: Engine, address: str) -> Account | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(sending_accounts).where(sending_accounts.c.address == normalise(address))
        ).first()
    return None if row is None else _account(row)
