"""Mail from strangers never reaches the operator's terminal as control characters.

A subject with an OSC title sequence, a screen clear, CR, BEL and a C1 CSI is sent
through SMTP and held; `quarantine list/show`, `trace` and `scan` print it with every
control character made visible (`\\x1b`), and nothing of it raw.
"""

from __future__ import annotations

import base64
import json
import re
import smtplib

from tests.integration.gateway.cli.operator_run import mailwarden

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\rinvoice\x9b31m\u202eexe.pdf"
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]")


def hostile_mail() -> bytes:
    subject = "=?utf-8?b?" + base64.b64encode(HOSTILE.encode()).decode() + "?="
    return (
        f"From: a@sender.test\r\nTo: bob@example.test\r\nSubject: {subject}\r\n"
        "Message-ID: <evil@sender.test>\r\n\r\nhello\r\n"
    ).encode()


def assert_terminal_safe(out: str) -> None:
    assert not RAW_CONTROLS.search(out), repr(out)


def test_a_subject_with_escape_sequences_is_printed_escaped(make_gateway, sink, tmp_path):
    gw = make_gateway(policy={"symbols": {"HEADER_MISSING_DATE": 11.0}})
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("a@sender.test", ["bob@example.test"], hostile_mail())
    config = str(gw.config)

    listing = mailwarden("quarantine", "list", "-c", config)
    assert listing.returncode == 0
    assert_terminal_safe(listing.stdout)
    as_json = mailwarden("quarantine", "list", "-c", config, "--json").stdout
    assert_terminal_safe(as_json)  # and still JSON: \u escapes, the subject intact
    item = json.loads(as_json)[0]

    shown = mailwarden("quarantine", "show", item["id"], "-c", config)
    assert shown.returncode == 0, shown.stderr
    assert_terminal_safe(shown.stdout)
    assert "Subject: \\x1b]0;pwned\\x07\\x1b[2J\\x0dinvoice\\x9b31m\\u202eexe.pdf" in shown.stdout

    traced = mailwarden("trace", "<evil@sender.test>", "-c", config)
    assert traced.returncode == 0, traced.stderr
    assert_terminal_safe(traced.stdout)
    assert "subject: \\x1b]0;pwned\\x07" in traced.stdout
    traced_json = mailwarden("trace", "<evil@sender.test>", "-c", config, "--json").stdout
    assert_terminal_safe(traced_json)
    assert json.loads(traced_json)["messages"][0]["subject"] == HOSTILE

    raw = tmp_path / "raw.eml"  # raw control bytes in a header, as a file on disk has them
    raw.write_bytes(
        b"From: a\x1b[31m@sender.test\r\nTo: bob@example.test\r\nSubject: x\x07\r\n\r\nhi\r\n"
    )
    scanned = mailwarden("scan", str(raw), "-c", config)
    assert_terminal_safe(scanned.stdout + scanned.stderr)
    assert "bob@example.test" in scanned.stdout

    missing = mailwarden("quarantine", "show", "\x1b[2Jgone\x07", "-c", config)
    assert missing.returncode == 2
    assert_terminal_safe(missing.stderr)
    assert "\\x1b[2Jgone\\x07: no such quarantine item" in missing.stderr
