"""Mail addresses as the gateway reads them: one place for "which domain is this for?".

An envelope address has already been checked by the SMTP edge; these helpers only
split it. Domains are compared lower-case and without a trailing root dot, everywhere.
"""

from __future__ import annotations

ROLE_ACCOUNTS = frozenset({"abuse", "postmaster"})  # RFC 2142: always receive mail


def domain_of(address: str) -> str:
    """The domain of `address`, lower-case, without a trailing dot ('' if it has none)."""
    _, at, domain = address.rpartition("@")
    return domain.lower().rstrip(".") if at else ""


def local_part(address: str) -> str:
    """The local part of `address` as written (the whole string if it has no '@')."""
    local, at, _ = address.rpartition("@")
    return local if at else address


def is_role_account(rcpt: str) -> bool:
    """abuse@ and postmaster@ of any domain: never refused or quarantined for spam."""
    return local_part(rcpt).lower() in ROLE_ACCOUNTS
