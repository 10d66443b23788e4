"""argon2id password hashes, for console users and sending accounts alike.

One hasher, one dummy hash: a name that does not exist costs the same verification
time as one that does, so a guesser cannot tell them apart by the clock.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


@functools.cache
def _dummy_hash() -> str:
    """Made once a process, when first needed: made at import, it cost every process
    that imports the store (each CLI command) 0.2 s of CPU. `warm` makes it at start
    where logins are checked, so the first unknown name takes no longer than the rest."""
    return _HASHER.hash("not a password of anyone")


def warm() -> None:
    """Make the dummy hash now (a server that checks logins calls this at start)."""
    _dummy_hash()


class PasswordTooShort(ValueError):
    """A new password below MIN_LENGTH characters."""


def check(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise PasswordTooShort(f"the password must have at least {MIN_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check(password))


def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; None (no such user) is checked against a
    dummy hash and is always False."""
    try:
        _HASHER.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


def needs_rehash(stored: str) -> bool:
    """The hash was made with weaker parameters than today's: store a new one."""
    return _HASHER.check_needs_rehash(stored)
