"""The antivirus filter through the real pipeline and a real clamd: which parts, bad input."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from datetime import UTC, datetime

import pytest

from filters.antivirus import Antivirus
from gateway.adapters import Ports
from gateway.adapters.clamd import ClamdClient
from gateway.config import ClamavSettings
from gateway.domain_policy import PolicyBook
from gateway.mail.mime import MAX_DEPTH
from gateway.model import Action, AvPolicy, Envelope, MessageContext
from gateway.pipeline.decide import ANTIVIRUS
from gateway.pipeline.run import Pipeline
from tests.support.virusmail import EICAR, Payload, Shapes, _b64, _mixed, _text

EICAR_NAME = "Mailwarden.Test.EICAR.UNOFFICIAL"
MB = 1024 * 1024


def run(server, raw: bytes, policy: AvPolicy | None = None, **settings):
    """One message through a pipeline holding only the antivirus filter."""
    settings.setdefault("stream_max_length", 64 * MB)
    cfg = ClamavSettings(socket=server.socket, **settings)
    client = ClamdClient.from_settings(cfg)

    async def go():
        pipeline = Pipeline(
            [Antivirus(cfg)],
            PolicyBook.from_settings(_Settings()),
            Ports(clamd=client),
            budget=60.0,
            av_policies=(lambda rcpts: _policies(rcpts, policy)) if policy else None,
        )
        env = Envelope("a@example.org", ("bob@example.test",), "192.0.2.1")
        return await pipeline.run(MessageContext("q1", env, raw, datetime.now(UTC)))

    try:
        verdict = asyncio.run(go())
    finally:
        client.close()
    return verdict.results["example.test"][ANTIVIRUS], verdict.decisions[0]


async def _policies(rcpts, policy):
    return dict.fromkeys(rcpts, policy)


class _Settings:
    from gateway.config import PolicySettings, ReportSettings

    policy = PolicySettings()
    report = ReportSettings()  # PolicyBook reads the default report addresses from it


def symbols(result):
    return {s.name: s.options for s in result.symbols}


def shaped(shape: str, payload: bytes = EICAR, name: str = "invoice.doc") -> bytes:
    maker = getattr(Shapes(Payload("notes.txt", b"meeting at ten\r\n")), shape)
    return maker(payload, name, "f1").encode()


@pytest.mark.parametrize(
    ("shape", "part", "filename"),
    [
        ("base64", "2", "invoice.doc"),
        ("quoted_printable", "2", "invoice.doc"),
        ("uuencode_part", "2", "invoice.doc"),
        ("uuencode_inline", "1", "invoice.doc"),
        ("zip", "2", "files-f1.zip"),
        ("nested_zip", "2", "bundle-f1.zip"),
        ("forwarded", "2.2", "invoice.doc"),
        ("forwarded_twice", "2.2.2", "invoice.doc"),
        ("rfc2231_name", "2", "季度报告-invoice.doc"),
        ("gb2312_name", "2", "季度报告.doc"),
        ("wrong_type", "2", "invoice.doc"),
        ("single_part", "1", "invoice.doc"),
        ("alternative", "3", "invoice.doc"),
    ],
)
def test_the_infected_part_is_named(clamd, shape, part, filename):
    result, decision = run(clamd, shaped(shape))
    assert [(i.part_id, i.virus, i.filename) for i in result.infections] == [
        (part, EICAR_NAME, filename)
    ]
    assert symbols(result)["VIRUS_FOUND"] == (EICAR_NAME,)
    assert result.facts["engine"].startswith("ClamAV ")
    assert result.facts["scans"] >= 2
    assert decision.virus.cleaned  # the default policy: clean, keep the original


def test_clean_message_has_no_symbols(clamd):
    result, decision = run(clamd, shaped("base64", payload=b"%PDF-1.4 harmless"))
    assert result.symbols == () and result.infections == () and result.error is None
    assert dict(decision.rendering.add_headers)["X-Virus-Status"] == "Clean"


def test_zip_bomb_is_held_not_passed(clamd):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(4):  # 4 x 30 MB of zeros: more than clamd's MaxScanSize (100M)
            zf.writestr(f"zeros{i}.bin", bytes(30 * MB))
    assert len(bomb.getvalue()) < 200_000
    result, decision = run(clamd, shaped("base64", payload=bomb.getvalue(), name="bomb.zip"))
    assert "2: MaxScanSize" in symbols(result)["AV_LIMITS_EXCEEDED"]
    assert result.infections == ()
    assert decision.action == Action.QUARANTINE
    assert not decision.spam


def test_archive_nested_too_deep_is_held(clamd):
    data = b"innermost"
    for level in range(30):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr(f"level{level}.zip", data)
        data = out.getvalue()
    result, decision = run(clamd, shaped("base64", payload=data, name="deep.zip"))
    assert "2: MaxRecursion" in symbols(result)["AV_LIMITS_EXCEEDED"]
    assert decision.action == Action.QUARANTINE


def test_part_claiming_base64_that_is_not_is_scanned_as_received(clamd):
    bad = (
        'Content-Type: application/octet-stream; name="x.com"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n" + EICAR.decode() + "\r\n"
    )
    raw = _mixed("bad", "bad base64", [_text("hi\r\n"), bad]).encode()
    result, decision = run(clamd, raw)
    assert symbols(result)["AV_PART_SCANNED_RAW"] == ("2",)
    assert [(i.part_id, i.virus) for i in result.infections] == [("2", EICAR_NAME)]
    assert decision.virus.cleaned


def nested_eicar(levels: int) -> bytes:
    """EICAR as the innermost part of `levels` nested multipart/mixed parts."""
    body = (
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + _b64(EICAR)
    )
    for level in range(levels):
        b = f"lvl{level}"
        body = (
            f'Content-Type: multipart/mixed; boundary="{b}"\r\n\r\n--{b}\r\n{body}\r\n--{b}--\r\n'
        )
    return ("Subject: deep\r\nMIME-Version: 1.0\r\n" + body).encode()


def test_a_hundred_levels_of_nesting_is_held(clamd):
    raw = nested_eicar(100)
    result, decision = run(clamd, raw)
    deep_part = "1" + ".1" * (MAX_DEPTH - 1)
    assert symbols(result)["AV_PART_SCANNED_RAW"] == (deep_part,)
    # the 60 levels below what we follow are scanned as mail by clamd, which gives up at
    # its recursion limit: the message is held, not passed
    assert f"{deep_part}: MaxRecursion" in symbols(result)["AV_LIMITS_EXCEEDED"]
    assert decision.action == Action.QUARANTINE


def test_zero_byte_attachment(clamd):
    raw = shaped("base64", payload=b"", name="empty.doc")
    result, decision = run(clamd, raw)
    assert symbols(result) == {"AV_EMPTY_ATTACHMENT": ("2: empty.doc",)}
    assert result.error is None
    assert decision.action == Action.ACCEPT


def test_twenty_five_megabyte_attachment(clamd):
    raw = shaped("base64", payload=EICAR + os.urandom(25 * MB), name="big.iso")
    assert len(raw) > 25 * MB
    result, decision = run(clamd, raw)
    assert [(i.part_id, i.virus) for i in result.infections] == [("2", EICAR_NAME)]
    assert decision.virus.cleaned


def test_part_over_stream_limit_is_held_in_clean_mode_and_flagged_in_detect(clamd):
    raw = shaped("base64", payload=os.urandom(2 * MB), name="big.bin")
    result, held = run(clamd, raw, stream_max_length=MB)
    assert symbols(result)["AV_PART_TOO_LARGE"] == ("2",)
    assert held.action == Action.QUARANTINE
    _, flagged = run(clamd, raw, policy=AvPolicy(mode="detect"), stream_max_length=MB)
    assert flagged.action == Action.ACCEPT
    assert dict(flagged.rendering.add_headers)["X-Virus-Status"].startswith("Not fully scanned")


def test_scanner_stopped_mid_run_tempfails(clamd_private):
    raw = shaped("base64")
    result, decision = run(clamd_private, raw)
    assert result.infections
    clamd_private.stop()
    result, decision = run(clamd_private, raw)
    assert result.error is not None
    assert symbols(result)["AV_SCAN_ERROR"]
    assert decision.action == Action.TEMPFAIL
    assert decision.reply.code == 451
    result, decision = run(clamd_private, raw, on_error="accept")
    assert decision.action == Action.ACCEPT
    assert not decision.virus.scanned


def test_nesting_a_little_deeper_than_followed_still_names_the_virus(clamd):
    raw = nested_eicar(MAX_DEPTH + 3)
    result, decision = run(clamd, raw)
    deep_part = "1" + ".1" * (MAX_DEPTH - 1)
    assert [(i.part_id, i.virus) for i in result.infections] == [(deep_part, EICAR_NAME)]
    # clamd could not read the whole message either (MaxRecursion): held, not cleaned
    assert "message: MaxRecursion" in symbols(result)["AV_LIMITS_EXCEEDED"]
    assert decision.action == Action.QUARANTINE


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_clamd_restarted_or_killed_between_two_messages(clamd_private, how):
    """One client, as in the gateway: its kept-open clamd session dies with clamd."""
    cfg = ClamavSettings(socket=clamd_private.socket, stream_max_length=64 * MB, workers=1)
    client = ClamdClient.from_settings(cfg)
    raw = shaped("base64")
    pipeline = Pipeline(
        [Antivirus(cfg)], PolicyBook.from_settings(_Settings()), Ports(clamd=client), budget=60.0
    )
    env = Envelope("a@example.org", ("bob@example.test",), "192.0.2.1")

    def one(queue_id: str):
        ctx = MessageContext(queue_id, env, raw, datetime.now(UTC))
        verdict = asyncio.run(pipeline.run(ctx))
        return verdict.results["example.test"][ANTIVIRUS], verdict.decisions[0]

    try:
        first, _ = one("q1")
        assert [(i.part_id, i.virus) for i in first.infections] == [("2", EICAR_NAME)]
        getattr(clamd_private, how)()
        clamd_private.start()
        again, _ = one("q2")  # the old session is gone: scanned on a new one
        assert again.error is None
        assert again.infections == first.infections
        getattr(clamd_private, how)()  # and now clamd stays down: 451, never clean
        down, decision = one("q3")
        assert down.error is not None and decision.reply.code == 451
        clamd_private.start()
        back, _ = one("q4")
        assert back.infections == first.infections
    finally:
        client.close()
