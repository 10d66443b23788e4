"""`mailwarden scan` as an operator runs it on a saved mail: recipients from the headers,
LF-only files as stored on disk, and the X-Spam-Level stars a Sieve recipe matches."""

from __future__ import annotations

import json

from tests.integration.gateway.cli.operator_run import mailwarden
from tests.support.gateway import write_config

SPAM_LF = (
    b"From: Deals <deals@shop.test>\n"
    b"To: Bob <bob@example.test>, eve@elsewhere.test\n"
    b"Cc: carol@other.test\n"
    b"Subject: cheap pills, limited offer\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\n"
    b"Message-ID: <offer-1@shop.test>\n\n"
    b"Buy cheap viagra pills now, limited offer, click here http://spam.test/\n"
)
HAM = (
    b"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: minutes\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m-1@sender.test>\r\n\r\n"
    b"Here are the minutes of Tuesday's meeting, as agreed.\r\n"
)


def _config(tmp_path, dns_server):
    return write_config(tmp_path, "127.0.0.1:9", {"dns": {"nameservers": [dns_server.nameserver]}})


def _scan(tmp_path, config, raw: bytes, *extra: str) -> dict:
    eml = tmp_path / "saved.eml"
    eml.write_bytes(raw)
    done = mailwarden("scan", str(eml), "-c", str(config), "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_without_rcpt_the_mail_is_judged_for_its_to_and_cc_at_our_domains(tmp_path, dns_server):
    verdict = _scan(tmp_path, _config(tmp_path, dns_server), SPAM_LF)
    # example.test and other.test are ours; elsewhere.test is not; no postmaster@
    assert list(verdict["action"]) == ["bob@example.test", "carol@other.test"]
    assert set(verdict["action"].values()) == {"quarantine"}  # not "tag", as a role account


def test_an_lf_only_file_is_not_a_bare_lf_client(tmp_path, dns_server):
    verdict = _scan(tmp_path, _config(tmp_path, dns_server), SPAM_LF)
    assert "BARE_LF" not in {s["name"] for s in verdict["symbols"]}
    mixed = SPAM_LF.replace(b"\n", b"\r\n", 2)  # CRLF and bare LF: a broken client
    verdict = _scan(tmp_path, _config(tmp_path, dns_server), mixed)
    assert "BARE_LF" in {s["name"] for s in verdict["symbols"]}


def test_x_spam_level_has_one_star_per_point(tmp_path, dns_server):
    config = _config(tmp_path, dns_server)
    out = tmp_path / "copy.eml"
    verdict = _scan(tmp_path, config, SPAM_LF, "--rcpt", "bob@example.test", "--out", str(out))
    head = out.read_bytes().split(b"\r\n\r\n")[0].decode()
    stars = int(verdict["score"])
    assert f"\r\nX-Spam-Level: {'*' * stars}\r\n" in head
    assert stars >= 5  # a Sieve `header :contains "X-Spam-Level" "*****"` files it
    ham = _scan(tmp_path, config, HAM, "--out", str(out))
    head = out.read_bytes().split(b"\r\n\r\n")[0].decode()
    assert f"X-Spam-Level: {'*' * max(0, int(ham['score']))}".rstrip() in head
    assert "*****" not in head
