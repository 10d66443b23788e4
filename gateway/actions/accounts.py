"""Suspending, restoring and setting the password of outbound sending accounts.

The CLI calls these (and the console may); automatic suspensions (score, rate, virus)
come from gateway.smtp.outbound_guard straight through the store. Each change is in
the audit log: suspend and restore write it in the store's own transaction, with
the account's event row; a password change writes it here (never the hash).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from gateway.actions.common import Actor, BadInput
from gateway.address import domain_of
from gateway.store import accounts, audit, passwords


def _address(actor: Actor, text: str) -> str:
    try:
        address = accounts.normalise(text)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    actor.require_domain(domain_of(address))
    return address


def _reason(text: str) -> str:
    if not text.strip() or not text.isprintable():
        raise BadInput("--reason: say why in printable text (it is shown in SMTP replies)")
    return text


def suspend(engine: Engine, actor: Actor, address: str, reason: str) -> bool:
    """Refuse the account's mail; False when it already was suspended."""
    return accounts.suspend(engine, _address(actor, address), _reason(reason), actor.name)


def restore(engine: Engine, actor: Actor, address: str, reason: str) -> bool:
    """Let the account send again; False when it was not suspended."""
    return accounts.restore(engine, _address(actor, address), _reason(reason), actor.name)


def set_password(engine: Engine, actor: Actor, address: str, password: str | None) -> bool:
    """The account's password for SMTP AUTH on the submission port (None: it may no
    longer log in); the account is made when missing. Returns whether it was new."""
    address = _address(actor, address)
    if password is not None:
        try:
            passwords.check(password)
        except passwords.PasswordTooShort as exc:
            raise BadInput(str(exc)) from None
    created = accounts.set_password(engine, address, password, actor.name)
    audit.record(
        engine,
        actor=actor.name,
        action="accounts.passwd",
        object_type="account",
        object_id=address,
        domain=domain_of(address),
        after={"login": password is not None, "created": created},
        address=actor.address,
    )
    return created
