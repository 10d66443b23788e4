"""Find the original mail inside a report mail (forwarded, attached or bounced).

A user who forwards a missed spam to spam-report@ sends one of:
- the original attached (message/rfc822, or an .eml file);
- the original inline, its headers pasted into the text ("Message-ID: <...>");
- the original itself, bounced/redirected (Resent-* headers on top).
Our queue id is in the Received header we added ("by HOST (mailwarden) with ESMTP
id QUEUEID") and in X-Mailwarden-Queue-ID; the Message-ID is the fallback.
Pure: bytes in, references out.
"""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
import re
from dataclasses import dataclass, field
from email.message import Message

QUEUE_ID = r"[0-9A-F]{21}"  # gateway.store.spool.new_queue_id
_OUR_RECEIVED = re.compile(rf"\(mailwarden\)\s+with\s+\S+\s+id\s+({QUEUE_ID})\b")
_X_QUEUE_ID = re.compile(rf"^X-Mailwarden-Queue-ID:\s*({QUEUE_ID})\b", re.I | re.M)
_MESSAGE_ID_LINE = re.compile(r"^\s*>?\s*Message-ID:\s*(<[^<>\s]+>)", re.I | re.M)
_UNFOLD = re.compile(r"\r?\n[ \t]+")


@dataclass
class References:
    queue_ids: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    original: bytes | None = None  # the reported mail's bytes, when attached or bounced

    def add(self, queue_ids: list[str], message_ids: list[str]) -> None:
        self.queue_ids += [q for q in queue_ids if q not in self.queue_ids]
        self.message_ids += [m for m in message_ids if m not in self.message_ids]


def _decode(encoded: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", encoded) + b"==")
    return quopri.decodestring(encoded)


def _header_text(msg: Message) -> str:
    return "\n".join(f"{k}: {v}" for k, v in msg.items())


def _ids_in(text: str) -> list[str]:
    text = _UNFOLD.sub(" ", text)
    return [*_OUR_RECEIVED.findall(text), *_X_QUEUE_ID.findall(text)]


def _from_message(msg: Message, refs: References) -> None:
    message_id = msg.get("Message-ID")
    refs.add(_ids_in(_header_text(msg)), [message_id.strip()] if message_id else [])


def _body_bytes(part: Message) -> bytes:
    """A leaf part's decoded body (b"" for a container part)."""
    body = part.get_payload(decode=True)
    return body if isinstance(body, bytes) else b""


def references(raw: bytes) -> References:
    """Queue ids and Message-IDs of the mail a report is about, best evidence first."""
    report = email.message_from_bytes(raw, policy=email.policy.compat32)
    refs = References()
    for part in report.walk():
        ctype = part.get_content_type()
        filename = (part.get_filename() or "").lower()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if not isinstance(inner, Message):
                continue
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if cte in ("base64", "quoted-printable"):  # not allowed, but clients do it
                data = _decode(inner.as_bytes(), cte)
                inner = email.message_from_bytes(data, policy=email.policy.compat32)
            else:
                data = inner.as_bytes()
            _from_message(inner, refs)
            refs.original = refs.original or data
        elif filename.endswith(".eml") or ctype == "text/rfc822-headers":
            data = _body_bytes(part)
            inner = email.message_from_bytes(data, policy=email.policy.compat32)
            _from_message(inner, refs)
            if ctype != "text/rfc822-headers":
                refs.original = refs.original or data
    resent = any(name.lower().startswith("resent-") for name in report)  # bounced/redirected
    if resent:
        _from_message(report, refs)
        refs.original = refs.original or raw
    for part in report.walk():  # inline forwards: headers pasted into the text
        if part.get_content_maintype() == "text" and not part.get_filename():
            data = _body_bytes(part)
            text = data.decode(part.get_content_charset() or "utf-8", "replace")
            refs.add(_ids_in(text), _MESSAGE_ID_LINE.findall(text))
    own = report.get("Message-ID")
    if own and not resent:
        refs.message_ids = [m for m in refs.message_ids if m != own.strip()]
    return refs
