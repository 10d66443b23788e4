"""Fuzzing the MIME reading and editing code (hypothesis, bounded: a few seconds).

Seeds live in tests/data/fuzz/mime/; hypothesis mutates them and also builds
messages from a small grammar of hostile shapes. Whatever comes in, reading never
raises, the skeleton scan agrees with the parser within the limits, line endings
are decided once (normalising twice changes nothing) and editing either gives a
message that parses to the same structure or refuses with MimeEditError.
Set MAILWARDEN_FUZZ_EXAMPLES for a longer run.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.mail.edit import MimeEditError, replace_parts
from gateway.mail.mime import body_text, message_urls
from gateway.mail.received import normalise, received_context
from gateway.mail.render import render
from gateway.mail.structure import scan_structure
from gateway.model import Envelope, PartNotice, Rendering

SEEDS = sorted((Path(__file__).parents[3] / "data" / "fuzz" / "mime").glob("*.eml"))
EXAMPLES = int(os.environ.get("MAILWARDEN_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("MAILWARDEN_FUZZ_EXAMPLES"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ENVELOPE = Envelope("a@sender.test", ("bob@example.test",), "192.0.2.1", "client.test")

_HEADER_NAMES = st.sampled_from(
    ["Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Subject", "X-Spam-Flag"]
)
_VALUES = st.sampled_from(
    [
        'multipart/mixed; boundary="b"',
        "multipart/mixed; boundary=b; boundary=c",
        "message/rfc822",
        "text/plain; charset=utf-8; charset=gb2312",
        "text/html",
        "base64",
        "quoted-printable",
        "x-uuencode",
        'attachment; filename="a.exe"',
        "attachment; filename*=utf-8''%E2%82%AC.zip",
        "=?utf-8?B?w6k=?=",
        "",
    ]
)
_LINES = st.sampled_from(
    [b"--b", b"--b--", b"--c", b"--c--", b"", b"QUFBQQ==", b"begin 644 x", b"end", b"=41=\r", b"\0"]
)
_ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n"])


@st.composite
def hostile_messages(draw) -> bytes:
    """Header blocks and boundary lines in any order, with any line endings."""
    out = b""
    for _ in range(draw(st.integers(1, 12))):
        ending = draw(_ENDINGS)
        if draw(st.booleans()):
            name, value = draw(_HEADER_NAMES), draw(_VALUES)
            out += f"{name}: {value}".encode() + ending
        else:
            out += draw(_LINES) + ending
    return out + draw(st.binary(max_size=40))


@st.composite
def mutated_seeds(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)).read_bytes())
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()) and at < len(data):
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.sampled_from([b"\r", b"\n", b"--b", b";", b'"', b"\0", b"="]))
    return bytes(data)


MESSAGES = st.one_of(mutated_seeds(), hostile_messages(), st.binary(max_size=300))


@FUZZ
@given(MESSAGES)
def test_reading_never_raises_and_line_endings_are_decided_once(raw):
    normal, notes = normalise(raw)
    assert normalise(normal) == (normal, frozenset())
    assert b"\0" not in normal and b"\r" not in normal.replace(b"\r\n", b"")
    structure = scan_structure(normal)
    ctx = received_context("FUZZ", ENVELOPE, raw, datetime.now(UTC))
    assert ctx.raw == normal and ctx.intake_notes == notes
    if structure.exceeded is None:
        parts = ctx.parts
        body_text(parts)
        message_urls(parts)
        ctx.header("Subject")
        assert sum(1 for _ in ctx.message.walk()) >= 1


@FUZZ
@given(MESSAGES, st.data())
def test_editing_keeps_the_structure_or_refuses(raw, data):
    ctx = received_context("FUZZ", ENVELOPE, raw, datetime.now(UTC))
    if ctx.structure.exceeded or not ctx.parts:
        return
    part = data.draw(st.sampled_from(ctx.parts))
    notice = PartNotice(part.part_id, "removed by the fuzz test\n")
    try:
        edited = replace_parts(ctx.raw, [notice], ctx.parts)
    except MimeEditError:
        return
    again = received_context("FUZZ2", ENVELOPE, edited, datetime.now(UTC))
    assert [p.part_id for p in again.parts] == [p.part_id for p in ctx.parts]
    rendering = Rendering(
        add_headers=(("X-Spam-Flag", "NO"),), subject_tag="[SPAM]", replace_parts=(notice,)
    )
    copy = render(ctx, rendering, ["bob@example.test"], "mx.example.test", None, "Q.q0")
    assert copy.startswith(b"Received: ")
