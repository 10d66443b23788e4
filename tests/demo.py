"""`make demo`: the gateway end to end on loopback, with embedded defaults.

Starts a sink standing in for the protected mail server, a DNS server with the
demo domains' SPF/DMARC records, and `mailwarden serve`; pushes sample messages
through real SMTP and prints what the client was told and what the mail server
received. Everything lives in a temporary directory and stops at the end.
Run from the repository root (it uses the test support servers).
"""

from __future__ import annotations

import base64
import contextlib
import email
import json
import smtplib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.clamd import ClamdServer, clamd_available
from tests.support.dnsserver import LoopbackDns
from tests.support.gateway import REPO, GatewayProcess, write_config
from tests.support.smtp_sink import SmtpSink


@dataclass
class Sample:
    title: str
    sender: str
    rcpts: list[str]
    data: bytes


def _message(sender: str, subject: str, body: str, extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: team@example.test\r\nSubject: {subject}\r\n"
        f"Date: Sun, 22 Nov 2026 09:00:00 +0000\r\nMessage-ID: <{abs(hash(subject))}@demo>\r\n"
        f"MIME-Version: 1.0\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _with_eicar() -> bytes:
    return (
        "From: alice@supplier.test\r\nTo: team@example.test, audit@example.test\r\n"
        "Subject: minutes and the test file\r\nDate: Sun, 22 Nov 2026 09:00:00 +0000\r\n"
        "Message-ID: <eicar@demo>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: text/plain\r\n\r\nMinutes attached.\r\n"
        '--b\r\nContent-Type: application/msword; name="minutes.doc"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(EICAR.encode()).decode()
        + "\r\n--b--\r\n"
    ).encode()


def samples() -> list[Sample]:
    exe = (
        b"From: partner@supplier.test\r\nTo: team@example.test\r\nSubject: the tool\r\n"
        b"Date: Sun, 22 Nov 2026 09:00:00 +0000\r\nMessage-ID: <exe@demo>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nhere it is\r\n"
        b'--b\r\nContent-Type: application/octet-stream; name="setup.exe"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAA=\r\n--b--\r\n"
    )
    return [
        Sample(
            "business mail from a sender whose SPF passes",
            "alice@supplier.test",
            ["team@example.test"],
            _message("alice@supplier.test", "Order 4711 confirmed", "Delivery on Monday."),
        ),
        Sample(
            "forged mail from a domain with DMARC p=reject",
            "ceo@bank.test",
            ["team@example.test"],
            _message("ceo@bank.test", "Urgent wire transfer", "Please pay today."),
        ),
        Sample(
            "spam caught by the domain admin's rule (cheap-pills)",
            "seller@supplier.test",
            ["team@example.test"],
            _message("seller@supplier.test", "CHEAP  PILLS today", "Best prices."),
        ),
        Sample(
            "an executable refused by the domain's no-executables rule",
            "partner@supplier.test",
            ["team@example.test"],
            exe,
        ),
        Sample(
            "an infected .doc to two mailboxes: team (clean mode) and audit (detect only)",
            "alice@supplier.test",
            ["team@example.test", "audit@example.test"],
            _with_eicar(),
        ),
        Sample(
            "mail for a domain we do not serve (no open relay)",
            "alice@supplier.test",
            ["someone@elsewhere.test"],
            _message("alice@supplier.test", "relay me", "No."),
        ),
    ]


def send(port: int, sample: Sample) -> str:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("mail.supplier.test")
            client.mail(sample.sender)
            for rcpt in sample.rcpts:
                code, text = client.rcpt(rcpt)
                if code != 250:
                    return f"{code} {text.decode()}"
            code, text = client.data(sample.data)
            return f"{code} {text.decode()}"
    except (OSError, smtplib.SMTPException) as exc:
        return f"error: {exc}"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mailwarden-demo-") as tmp, SmtpSink() as sink:
        directory = Path(tmp)
        rules = directory / "rules"
        rules.mkdir()
        (rules / "example.test.yaml").write_bytes(
            (REPO / "rules" / "examples" / "example.test.yaml").read_bytes()
        )
        with LoopbackDns() as dns, contextlib.ExitStack() as stack:
            clamav = {}
            if clamd_available():
                clamd = stack.enter_context(ClamdServer())
                clamav = {"clamav": {"socket": str(clamd.socket)}}
            else:
                print("clamd is not installed (make system-deps): antivirus left out\n")
            dns.zone.add("supplier.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
            dns.zone.add("mail.supplier.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
            dns.zone.add("bank.test", "TXT", "v=spf1 ip4:192.0.2.10 -all")
            dns.zone.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject")
            config = write_config(
                directory,
                sink.address,
                {
                    "smtp": {"max_recipients": 100},
                    "dns": {"nameservers": [dns.nameserver]},
                    "rules": {"dir": str(rules)},
                    **clamav,
                },
            )
            if clamav:  # audit@ wants infected mail flagged, not cleaned
                _cli("policy", "set", "audit@example.test", "--mode", "detect", "-c", str(config))
            print(f"config: {config}\n{config.read_text()}")
            gateway = GatewayProcess(config).start()
            try:
                print(f"gateway listening on 127.0.0.1:{gateway.port}, next hop {sink.address}\n")
                for i, sample in enumerate(samples(), 1):
                    if "infected" in sample.title and not clamav:
                        continue
                    before = len(sink.messages)
                    reply = send(gateway.port, sample)
                    print(f"{i}. {sample.title}\n   SMTP reply: {reply}")
                    if reply.startswith("250"):
                        _show_arrivals(sink, before, config)
                    print()
                _show_tables(config)
            finally:
                gateway.stop()
    return 0


def _show_arrivals(sink: SmtpSink, before: int, config: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(sink.messages) <= before:
        time.sleep(0.05)
    time.sleep(0.3)  # copies for other recipients may follow
    if len(sink.messages) <= before:
        held = _cli("quarantine", "list", "-c", str(config), "--json")
        print(f"   not delivered: held in quarantine ({len(json.loads(held))} item(s) so far)")
        return
    for copy in sink.messages[before:]:
        msg = email.message_from_bytes(copy.data)
        print(f"   delivered to {', '.join(copy.rcpts)}, Subject: {msg['Subject']}")
        for name in ("X-Spam-Status", "X-Virus-Status", "Authentication-Results"):
            if msg[name]:
                print(f"     {name}: {' '.join(str(msg[name]).split())}")
        attachments = [p.get_filename() or p.get_content_type() for p in msg.walk()][1:]
        if len(attachments) > 1:
            print(f"     parts: {', '.join(str(a) for a in attachments)}")


def _cli(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, cwd=REPO
    )
    return out.stdout


def _show_tables(config: Path) -> None:
    print("mailwarden queue:")
    print("   " + _cli("queue", "-c", str(config)).strip().replace("\n", "\n   "))
    print("mailwarden quarantine list:")
    print("   " + _cli("quarantine", "list", "-c", str(config)).strip().replace("\n", "\n   "))


if __name__ == "__main__":
    sys.exit(main())
