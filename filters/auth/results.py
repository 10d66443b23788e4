"""The Authentication-Results header (RFC 8601): writing ours, spotting forged ones.

Downstream (the mail server, the user's client) trusts an Authentication-Results
header only because it carries our authserv-id, so incoming headers that claim
it must go (`claims_authserv_id`), and what we write must never let the sender
inject text: every value we print is a validated domain, a token or a
sanitised comment, and the header is one line (the transform may fold it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from filters.auth.dkimcheck import ArcOutcome, DkimOutcome
from filters.auth.dmarc import DmarcVerdict
from filters.auth.spfcheck import SpfOutcome

_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_TOKEN = re.compile(r"^[A-Za-z0-9._+-]{1,253}$")
_TSPECIALS = set('()<>@,;:\\"/[]?=')


def _comment(text: str, limit: int = 120) -> str:
    """A comment safe to print: printable ASCII, no parentheses or backslashes."""
    clean = "".join(c if " " <= c <= "~" and c not in "()\\" else " " for c in text)
    clean = " ".join(clean.split())
    if len(clean) > limit:
        clean = clean[: limit - 3] + "..."
    return f" ({clean})" if clean else ""


def _prop(name: str, value: str) -> str:
    return f" {name}={value}" if value and _TOKEN.match(value) else ""


def _spf(spf: SpfOutcome) -> str:
    if spf.identity == "helo":
        prop = _prop("smtp.helo", spf.domain)
    else:
        local, _, _domain = spf.sender.rpartition("@")
        if spf.domain and local.isascii() and _DOT_ATOM.match(local):
            prop = f" smtp.mailfrom={local}@{spf.domain}"
        else:
            prop = _prop("smtp.mailfrom", spf.domain)
    reason = spf.reason if spf.result not in ("pass", "none") or not spf.domain else ""
    return f"spf={spf.result}{_comment(reason)}{prop}"


def _dkim(d: DkimOutcome) -> str:
    reason = _comment(d.reason) if d.result != "pass" else ""
    props = _prop("header.d", d.domain) + _prop("header.s", d.selector)
    props += _prop("header.a", d.algorithm) + _prop("header.b", d.b)
    return f"dkim={d.result}{reason}{props}"


def _dmarc(v: DmarcVerdict, disposition: str) -> str:
    if v.result in ("pass", "fail"):
        comment = f"p={v.published} dis={disposition}"
        if v.sampled_out:
            comment += " pct"
        comment = _comment(comment)
    else:
        comment = _comment(v.reason)
    return f"dmarc={v.result}{comment}{_prop('header.from', v.domain)}"


def authentication_results(
    authserv_id: str,
    spf: SpfOutcome,
    dkim: tuple[DkimOutcome, ...],
    dmarc: DmarcVerdict,
    disposition: str,
    arc: ArcOutcome | None = None,
) -> str:
    """The header value (without the field name), one line."""
    parts = [authserv_id, _spf(spf)]
    parts += [_dkim(d) for d in dkim] or ["dkim=none"]
    parts.append(_dmarc(dmarc, disposition))
    if arc is not None and arc.result != "none":
        parts.append(f"arc={arc.result}{_comment(arc.reason) if arc.result != 'pass' else ''}")
    return "; ".join(parts)


def _skip_cfws(text: str, i: int) -> int | None:
    """Index after whitespace and (nested) comments; None for an unterminated comment."""
    while i < len(text):
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            depth = 0
            while i < len(text):
                c = text[i]
                if c == "\\":
                    i += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            else:
                return None
            i += 1
        else:
            break
    return i


def _first_value(text: str) -> str | None:
    """The authserv-id: the first token or quoted-string after optional CFWS."""
    i = _skip_cfws(text, 0)
    if i is None or i >= len(text):
        return None
    if text[i] == '"':
        out = []
        i += 1
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                return "".join(out)
            out.append(c)
            i += 1
        return None  # unterminated quoted-string
    start = i
    while i < len(text) and text[i] not in _TSPECIALS and not text[i].isspace():
        i += 1
    return text[start:i] or None


def claims_authserv_id(header_value: str, authserv_id: str) -> bool:
    """Does this Authentication-Results value speak for `authserv_id` (RFC 8601 5)?

    Compared case-insensitively, ignoring a trailing dot, after leading comments
    and folding; a version number or a missing result list after the id does
    not matter. Used by the transform to remove forged headers.
    """
    if not header_value or not authserv_id:
        return False
    value = _first_value(header_value)
    if value is None:
        return False
    return value.strip().rstrip(".").lower() == authserv_id.strip().rstrip(".").lower()


def forged_results_dropper(authserv_id: str) -> Callable[[bytes], bool]:
    """A `drop_field` for gateway.mail.render.render: True for an incoming
    Authentication-Results field (raw bytes, folded) that claims `authserv_id`."""

    def drop(field: bytes) -> bool:
        name, sep, value = field.partition(b":")
        if not sep or name.strip().lower() != b"authentication-results":
            return False
        return claims_authserv_id(value.decode("utf-8", "replace"), authserv_id)

    return drop
