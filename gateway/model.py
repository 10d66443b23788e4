"""The values that flow through the gateway: envelope, message, symbols, decisions.

Everything here is plain immutable data so that filters and policy stay pure
functions of their inputs, and so that any value can be written to the ledger.
"""

from __future__ import annotations

import email
import email.errors
import email.message
import email.policy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from gateway.lazy import cached_property

EMPTY: Mapping[str, Any] = MappingProxyType({})


class Action(StrEnum):
    """What happens to one recipient's copy, ordered from mildest to harshest."""

    ACCEPT = "accept"
    TAG = "tag"
    QUARANTINE = "quarantine"
    REJECT = "reject"
    TEMPFAIL = "tempfail"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {a: i for i, a in enumerate(Action)}

DELIVERABLE = frozenset({Action.ACCEPT, Action.TAG})  # actions whose copy goes to the next hop


class RcptStatus(StrEnum):
    """Where one recipient's copy stands, in the ledger and in the spool."""

    PENDING = "pending"  # spooled, not yet accepted by the next hop
    DELIVERED = "delivered"
    RELEASED = "released"  # delivered from the quarantine
    BOUNCED = "bounced"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"  # refused with 5xx at the end of DATA
    TEMPFAILED = "tempfailed"  # refused with 4xx at the end of DATA


class ForceKind(StrEnum):
    """A demand that overrides the score. ALLOW skips spam scoring, never antivirus."""

    ALLOW = "allow"
    TAG = "tag"
    QUARANTINE = "quarantine"
    REJECT = "reject"
    TEMPFAIL = "tempfail"


class OnError(StrEnum):
    """What a filter's failed lookup means for the message (Haraka-style)."""

    TEMPFAIL = "tempfail"  # answer 451, the client retries; nothing lost
    CONTINUE = "continue"  # go on without this filter's evidence


@dataclass(frozen=True)
class Envelope:
    """What the SMTP dialogue told us, before we read the message."""

    mail_from: str  # "" for the null sender <>
    rcpt_tos: tuple[str, ...]
    client_ip: str
    helo: str = ""
    client_hostname: str | None = None  # reverse DNS, when known
    tls: bool = False
    smtputf8: bool = False
    body_8bitmime: bool = False
    outbound: bool = False  # from [outbound] trusted_networks or AUTH: may go to any domain
    auth_account: str | None = None  # the sending account logged in with SMTP AUTH


@dataclass(frozen=True)
class Symbol:
    """One named observation. Weights live in configuration, never in filters.

    `factor` scales the configured weight for graded evidence (a classifier
    probability, a DNSBL with several return codes), as rspamd's dynamic scores do.
    """

    name: str
    options: tuple[str, ...] = ()
    factor: float = 1.0


@dataclass(frozen=True)
class ScoredSymbol:
    name: str
    score: float
    options: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "score": round(self.score, 3), "options": list(self.options)}


@dataclass(frozen=True)
class Force:
    """A filter's or rule's demand for an action regardless of the score."""

    kind: ForceKind
    reason: str
    source: str  # the filter or rule that demanded it
    reply_text: str | None = None  # shown in the SMTP reply for reject/tempfail


@dataclass(frozen=True)
class Infection:
    """A virus found in one MIME part ("" = the message as a whole)."""

    part_id: str
    virus: str
    filename: str | None = None
    uuencoded: bool = False  # in a uuencoded block inside the (text) part, named `filename`


@dataclass(frozen=True)
class FilterResult:
    """What one filter concluded about one message, for one recipient domain."""

    symbols: tuple[Symbol, ...] = ()
    force: Force | None = None
    headers: tuple[tuple[str, str], ...] = ()  # added to delivered copies
    infections: tuple[Infection, ...] = ()
    error: str | None = None  # the lookup failed or ran out of time
    facts: Mapping[str, Any] = field(default_factory=lambda: EMPTY)  # for ledger, later filters


@dataclass(frozen=True)
class PartNotice:
    """Replace MIME part `part_id` by a text/plain notice (antivirus cleaning), or
    only the uuencoded block named `block` inside that text part."""

    part_id: str
    text: str
    block: str | None = None


@dataclass(frozen=True)
class Rendering:
    """How a recipient's copy differs from the received message.

    Recipients with equal renderings share one delivered copy.
    """

    add_headers: tuple[tuple[str, str], ...] = ()
    subject_tag: str | None = None
    replace_parts: tuple[PartNotice, ...] = ()


@dataclass(frozen=True)
class Reply:
    code: int
    status: str  # enhanced status code, e.g. "5.7.1"
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"


@dataclass(frozen=True)
class VirusOutcome:
    """What antivirus did for one recipient."""

    scanned: bool
    viruses: tuple[str, ...] = ()
    mode: str = "clean"  # clean | detect
    cleaned: bool = False
    original_kept: bool = False


@dataclass(frozen=True)
class AvPolicy:
    """One mailbox's antivirus settings, as service agreements describe them."""

    enabled: bool = True
    mode: str = "clean"  # clean: remove infected parts, deliver the rest | detect: flag only
    keep_original: bool = True  # keep the infected original in quarantine for abuse@ staff


@dataclass(frozen=True)
class Decision:
    """The outcome for one recipient."""

    rcpt: str
    action: Action
    score: float
    symbols: tuple[ScoredSymbol, ...]
    reasons: tuple[str, ...] = ()
    reply: Reply | None = None  # for reject and tempfail
    rendering: Rendering = Rendering()
    virus: VirusOutcome | None = None
    spam: bool = False  # judged spam (tagged, quarantined or rejected for spam)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rcpt": self.rcpt,
            "action": str(self.action),
            "score": round(self.score, 3),
            "spam": self.spam,
            "symbols": [s.as_json() for s in self.symbols],
            "reasons": list(self.reasons),
        }
        if self.reply:
            out["reply"] = str(self.reply)
        if self.virus:
            out["virus"] = {
                "scanned": self.virus.scanned,
                "viruses": list(self.virus.viruses),
                "mode": self.virus.mode,
                "cleaned": self.virus.cleaned,
                "original_kept": self.virus.original_kept,
            }
        return out


_NOT_A_LEAF = ("multipart", "message")
# a header block that declares a container: parse it whole at once, not its header
# block first and then again (a folded or odd declaration still takes the check below)
_CONTAINER = re.compile(rb"(?im)^content-type:[ \t]*(?:multipart|message)/")


# A header block that email.feedparser reads one way only: every line a field (a name of
# printable ASCII but ":", then ":") or its continuation (space or tab), each ended by
# CRLF; or an mbox "From " line that a field follows (the parser notes it as a defect).
_NAME = r"[\x21-\x39\x3b-\x7e]+"
_PLAIN_HEADERS = re.compile(
    rf"(?:{_NAME}:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*|From [^\r\n]*\r\n(?={_NAME}:))*"
)
# one field as compat32's header_source_parse makes it: the name as written; the value
# without the blanks after ":" and without its last CRLF, continuation lines kept as sent
_PLAIN_FIELD = re.compile(
    rf"({_NAME}):[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)\r\n|(From [^\r\n]*\r\n)"
)
_EOL = re.compile(r"[\r\n]")


def parse_message(raw: bytes) -> email.message.Message:
    """`email.message_from_bytes` with compat32, cheaper for single-part mail: a header
    block of plain fields is read by two regular expressions instead of the parser's
    line-by-line reading, and the body becomes the payload as is, which is what the
    parser would make of it, without splitting it into lines. Anything else
    (multipart, message/*, odd header lines) takes the full parser."""
    end = raw.find(b"\r\n\r\n")
    if end >= 0 and not _CONTAINER.search(raw, 0, end + 2):
        head = raw[: end + 2].decode("ascii", "surrogateescape")
        start = head.find("\r\n") + 2 if head.startswith("From ") else 0  # an mbox line
        unixfrom = head[: start - 2] if start else None
        if _PLAIN_HEADERS.fullmatch(head, start) and not (unixfrom and _EOL.search(unixfrom)):
            msg = email.message.Message(policy=email.policy.compat32)
            if unixfrom:
                msg.set_unixfrom(unixfrom)
            for name, value, misplaced in _PLAIN_FIELD.findall(head, start):
                if misplaced:
                    msg.defects.append(email.errors.MisplacedEnvelopeHeaderDefect(misplaced))
                else:
                    msg.set_raw(name, value)
        else:
            # the header block alone: its defects (a misplaced mbox line, a missing
            # name) are the whole parse's, as long as every line was read as a header
            msg = email.message_from_bytes(raw[: end + 4], policy=email.policy.compat32)
            if msg.get_payload() != "":
                return email.message_from_bytes(raw, policy=email.policy.compat32)
        if msg.get_content_maintype() not in _NOT_A_LEAF:
            msg.set_payload(raw[end + 4 :].decode("ascii", "surrogateescape"))
            return msg
    return email.message_from_bytes(raw, policy=email.policy.compat32)


class MessageContext:
    """One received message: envelope, raw bytes as received, the MIME tree parsed once."""

    __slots__ = ("__dict__", "envelope", "intake_notes", "queue_id", "raw", "received_at")

    def __init__(
        self,
        queue_id: str,
        envelope: Envelope,
        raw: bytes,
        received_at: datetime,
        intake_notes: frozenset[str] = frozenset(),
    ) -> None:
        self.queue_id = queue_id
        self.envelope = envelope
        self.raw = raw
        self.received_at = received_at
        self.intake_notes = intake_notes  # what receiving noticed, e.g. {"bare_lf"}
        self._header_values: dict[str, tuple[str, ...]] = {}  # lower-cased name -> values

    @cached_property
    def message(self) -> email.message.Message:
        """The parsed message, with the compat32 policy: nine times faster than
        policy.default on real mail and tolerant of garbage. Header values are raw
        strings (encoded-words undecoded): use `header()` for readable text."""
        return parse_message(self.raw)

    @cached_property
    def parts(self) -> tuple[Any, ...]:
        """Leaf MIME parts with ids and decoded payloads (see gateway.mail.mime.Part)."""
        from gateway.mail.mime import leaf_parts

        return tuple(leaf_parts(self.message))

    @cached_property
    def urls(self) -> tuple[str, ...]:
        """Every web URL of the message, in order (gateway.mail.mime.message_urls): the
        blocklist's URI lookups and the rules read the same list."""
        from gateway.mail.mime import message_urls

        return tuple(message_urls(self.parts))

    @cached_property
    def body_text(self) -> str:
        """The readable text of the message (gateway.mail.mime.body_text)."""
        from gateway.mail.mime import body_text

        return body_text(self.parts)

    @cached_property
    def structure(self) -> Any:
        """The MIME skeleton read from the raw bytes (gateway.mail.structure.Structure);
        intake sets it with the configured limits before anything is parsed."""
        from gateway.mail.structure import scan_structure

        return scan_structure(self.raw)

    def read_all(self) -> None:
        """Parse now what the filters' lookups read: the MIME tree, every part's text
        and links, the URLs. For a worker thread: a big message parsed on the event
        loop would hold every other session of the process until it is done."""
        self.urls  # noqa: B018 - the parts and the message on the way
        self.body_text  # noqa: B018

    def read_parts(self) -> None:
        """Parse now the MIME tree and the leaf parts only (`read_all` without the text
        and the links): what the built-in message checks read."""
        self.parts  # noqa: B018 - the message on the way

    def header(self, name: str) -> list[str]:
        """All values of a header, decoded; never raises on malformed input. Each name
        is looked up and decoded once (the ledger, the events, the checks and the rules
        ask for the same few)."""
        key = name.lower()
        found = self._header_values.get(key)
        if found is None:
            from gateway.mail.mime import header_values

            found = self._header_values[key] = tuple(header_values(self.message, name))
        return list(found)


@dataclass(frozen=True)
class Verdict:
    """Everything the pipeline concluded about one message."""

    ctx: MessageContext
    results: Mapping[str, Mapping[str, FilterResult]]  # domain -> filter -> result
    decisions: tuple[Decision, ...]
    timings_ms: Mapping[str, float]

    def decision_for(self, rcpt: str) -> Decision:
        return next(d for d in self.decisions if d.rcpt == rcpt)

    def facts(self, filter_name: str) -> Mapping[str, Any]:
        """A filter's facts (the same for every domain: they come from its lookup)."""
        for by_filter in self.results.values():
            if filter_name in by_filter:
                return by_filter[filter_name].facts
        return {}
