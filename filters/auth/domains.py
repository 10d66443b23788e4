"""Domain names as DMARC compares them: A-labels, organizational domains, alignment.

The organizational domain comes from the Public Suffix List bundled with the
`publicsuffixlist` package (read once, never downloaded at run time), so an
update of the list is a package upgrade, reviewed like any other.
"""

from __future__ import annotations

import re
from functools import cache

import idna
from publicsuffixlist import PublicSuffixList

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def ascii_domain(text: str) -> str | None:
    """The lower-case A-label form of a domain, or None when it is not a usable name.

    Non-ASCII domains (SMTPUTF8 senders, IDN From addresses) are converted with
    IDNA 2008 + UTS 46, as RFC 8616 asks of email authentication.
    """
    name = text.strip().rstrip(".")
    if not name or len(name) > 253:
        return None
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
    name = name.lower()
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return None
    return name


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def org_domain(domain: str) -> str:
    """The organizational domain (RFC 7489 3.2): the public suffix plus one label.

    A name that is itself a public suffix is its own organizational domain.
    """
    return _psl().privatesuffix(domain) or domain


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """DMARC identifier alignment: strict = same name, relaxed = same org domain."""
    identifier, from_domain = identifier.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not identifier or not from_domain:
        return False
    if identifier == from_domain:
        return True
    return mode != "s" and org_domain(identifier) == org_domain(from_domain)
