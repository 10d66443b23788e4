"""The shipped classifier inside the gateway: `scan --json` and real SMTP with the ledger."""

from __future__ import annotations

import base64
import json
import re
import smtplib
import time

from sqlalchemy import select

from filters.classifier import load_model
from gateway.cli import main
from gateway.store import ledger

PHISH = b"""From: "PayPal Security" <service@paypa1-secure.example>\r
To: bob@example.test\r
Subject: Your account has been limited - verify now\r
Date: Mon, 2 Nov 2026 10:00:00 +0000\r
Message-ID: <20261102100000.ABCDEF123456@mailer-xyz.example>\r
Reply-To: support-desk@collect-info.example\r
MIME-Version: 1.0\r
Content-Type: text/html; charset=utf-8\r
\r
<html><body><p>Dear Customer,</p><p>We have detected unusual activity on your account.\r
Your account access has been limited until you verify your identity. Click here to verify\r
your account now: <a href="http://192.0.2.55/paypal/login.php">Verify Account</a></p>\r
<p>If you do not verify within 24 hours your account will be permanently suspended.</p>\r
<p>Claim your free bonus: limited time offer, cheap meds, casino, 100% guaranteed!</p>\r
</body></html>\r
"""

HAM = b"""From: alice@sender.test\r
To: bob@example.test\r
Subject: quarterly report draft\r
Date: Mon, 2 Nov 2026 10:00:00 +0000\r
Message-ID: <a1.report@sender.test>\r
MIME-Version: 1.0\r
Content-Type: text/plain; charset=utf-8\r
\r
Hi Bob,\r
\r
I attached the draft of the quarterly report. Could you review the budget section\r
before our meeting tomorrow at 10? Let me know if the numbers look right.\r
\r
Thanks,\r
Alice\r
"""


def _gb(text: str) -> str:
    return "=?gb2312?B?" + base64.b64encode(text.encode("gb2312")).decode() + "?="


def _chinese(subject: str, body: str) -> bytes:
    head = (
        f"From: wang@fapiao.example\r\nTo: bob@example.test\r\nSubject: {_gb(subject)}\r\n"
        "Date: Mon, 2 Nov 2026 10:00:00 +0800\r\nMessage-ID: <x1@fapiao.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=gb2312\r\n\r\n"
    )
    return head.encode() + body.encode("gb2312") + b"\r\n"


CN_SPAM = _chinese(
    "代开各类正规发票",
    "您好！本公司长期代开全国各地增值税发票、普通发票，税点优惠，可先验票后付款。"
    "欢迎来电咨询：联系人王先生，手机13800000000。如有打扰，敬请谅解！",
)
CN_HAM = _chinese(
    "下周组会时间调整",
    "张老师您好，下周二下午的课题组会议改到三点，地点还是在实验室。请把论文的修改稿提前发给我，谢谢！",
)


def _scan(tmp_path, capsys, name: str, raw: bytes) -> dict:
    eml = tmp_path / f"{name}.eml"
    eml.write_bytes(raw)
    capsys.readouterr()
    assert main(["scan", str(eml), "--rcpt", "bob@example.test", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_scan_json_shows_the_classifier_verdict_in_english_and_chinese(tmp_path, capsys):
    for name, raw in (("phish", PHISH), ("cn_spam", CN_SPAM)):
        verdict = _scan(tmp_path, capsys, name, raw)
        symbols = {s["name"]: s for s in verdict["symbols"]}
        assert "CLASSIFIER_SPAM" in symbols, (name, symbols)
        assert symbols["CLASSIFIER_SPAM"]["score"] >= 5.0
        assert symbols["CLASSIFIER_SPAM"]["options"][0].startswith("p=")
        assert verdict["action"]["bob@example.test"] in ("tag", "quarantine"), name
        explained = verdict["classifier"]["top_features"]  # why: what pushed the score up
        assert explained["up"] and all(e["share"] > 0 for e in explained["up"]), explained
        assert all(e["share"] < 0 for e in explained["down"])
        if name == "cn_spam":
            assert any(re.search("[\u4e00-\u9fff]", e["feature"]) for e in explained["up"])
    for name, raw in (("ham", HAM), ("cn_ham", CN_HAM)):
        verdict = _scan(tmp_path, capsys, name, raw)
        names = {s["name"] for s in verdict["symbols"]}
        assert "CLASSIFIER_SPAM" not in names and names & {"CLASSIFIER_HAM", "CLASSIFIER_UNSURE"}
        assert verdict["action"]["bob@example.test"] == "accept", name


def _ledger(gw, subject: str, timeout: float = 15.0) -> tuple[dict, list[dict]]:
    deadline = time.monotonic() + timeout
    while True:
        with gw.gateway.db.engine.connect() as conn:
            msgs = [dict(r._mapping) for r in conn.execute(select(ledger.messages))]
            msg = next((m for m in msgs if m["subject"] == subject), None)
            if msg is not None:
                rcpts = conn.execute(
                    select(ledger.recipients).where(ledger.recipients.c.message_id == msg["id"])
                )
                return msg, [dict(r._mapping) for r in rcpts]
        assert time.monotonic() < deadline, f"no ledger row for {subject!r}"
        time.sleep(0.05)


def test_through_smtp_phishing_is_quarantined_and_the_ledger_names_the_model(gateway, sink):
    version = load_model().version
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=30) as client:
        client.sendmail("alice@sender.test", ["bob@example.test"], HAM)
        client.sendmail("alice@sender.test", ["bob@example.test"], PHISH)
    delivered = sink.wait_for(1)
    assert len(delivered) == 1 and b"quarterly report draft" in delivered[0].data
    assert b"X-Spam-Flag: NO" in delivered[0].data

    msg, rcpts = _ledger(gateway, "Your account has been limited - verify now")
    assert msg["model_version"] == version
    facts = msg["filters"]["classifier"]["facts"]
    assert facts["spam"] is True and facts["probability"] > 0.99
    assert [r["action"] for r in rcpts] == ["quarantine"] and rcpts[0]["spam"]
    ham_msg, ham_rcpts = _ledger(gateway, "quarterly report draft")
    assert ham_msg["model_version"] == version
    assert [r["action"] for r in ham_rcpts] == ["accept"]
    time.sleep(0.5)
    assert len(sink.messages) == 1  # the phishing copy never reached the mail server
