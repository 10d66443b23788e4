"""The console for tests: a real gateway with [web] listen, mail held through SMTP,
users of each role, and an HTTP client that logs in as a person does."""

from __future__ import annotations

import re
import smtplib
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import filters.classifier  # noqa: F401 - scikit-learn loads at collection, not inside the 30 s start
from gateway.store import users
from gateway.store.quarantine import list_items
from tests.support.gateway import InProcessGateway, write_config
from tests.support.smtp_sink import SmtpSink, free_port

PASSWORD = "a long test password"
# role -> (user name, domains)
PEOPLE = {
    "operator": ("olga", ()),
    "abuse-staff": ("sam", ("example.test",)),
    "domain-admin": ("ada", ("example.test",)),
}
OTHER_STAFF = ("otto", ("other.test",))  # staff of the other domain
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def held_mail(subject: str, rcpt: str, extra: str = "") -> bytes:
    """No Date header: with HEADER_MISSING_DATE weighted 11 it is held as spam."""
    return (
        f"From: spammer@sender.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@sender.test>\r\n{extra}\r\nbody of {subject}\r\n"
    ).encode()


def attachment_mail(rcpt: str) -> bytes:
    return (
        "From: spammer@sender.test\r\nTo: " + rcpt + "\r\nSubject: with attachment\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
        "--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        "--b1\r\nContent-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="invoice.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n--b1--\r\n"
    ).encode()


@dataclass
class ConsoleUnderTest:
    gateway: InProcessGateway
    sink: SmtpSink
    url: str
    items: dict[str, str] = field(default_factory=dict)  # name -> item id

    @property
    def engine(self):
        return self.gateway.gateway.db.engine

    def send(self, data: bytes, rcpts: list[str], sender: str = "spammer@sender.test") -> None:
        with smtplib.SMTP("127.0.0.1", self.gateway.port) as client:
            client.sendmail(sender, rcpts, data)

    def arrived(self, marker: bytes, timeout: float = 15.0) -> list:
        """The sink's messages containing `marker`, waiting until one came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in list(self.sink.messages) if marker in m.data]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no message with {marker!r} arrived at the sink")

    def held_for(self, subject: str) -> str:
        for item in list_items(self.engine, status=None, limit=1000):
            if item["subject"] == subject:
                return item["id"]
        raise AssertionError(f"nothing held with subject {subject!r}")


def start_console(
    directory: Path, sections: dict[str, dict] | None = None, **extra
) -> ConsoleUnderTest:
    """`sections`: more of the gateway's config; `extra`: more of its [web] section."""
    sink = SmtpSink().start()
    secret = directory / "web.key"
    secret.write_text("test-signing-key-" + "x" * 32)
    port = free_port()
    sections = {
        **(sections or {}),
        "policy": {"symbols": {"HEADER_MISSING_DATE": 11.0}},
        "policy.thresholds": {"reject": 1000.0},  # held, never refused: staff review it
        "web": {"listen": f"127.0.0.1:{port}", "secret_file": str(secret), **extra},
    }
    gw = InProcessGateway(write_config(directory, sink.address, sections)).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/login", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    for role, (name, domains) in PEOPLE.items():
        users.add(gw.gateway.db.engine, name, role, domains, PASSWORD)
    users.add(gw.gateway.db.engine, OTHER_STAFF[0], "abuse-staff", OTHER_STAFF[1], PASSWORD)
    return ConsoleUnderTest(gw, sink, url)


def stop_console(console: ConsoleUnderTest) -> None:
    try:
        console.gateway.stop()
    finally:
        console.sink.stop()


class Browser:
    """A person's cookie session over plain HTTP (httpx): log in through the form."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, follow_redirects=False, timeout=10)
        self.csrf = ""

    def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        form = self.client.get("/login")
        token = CSRF.search(form.text)
        assert token, form.text
        answer = self.client.post(
            "/login", data={"username": name, "password": password, "csrf": token.group(1)}
        )
        if answer.status_code == 303:
            page = self.client.get("/password")
            found = CSRF.search(page.text)
            assert found, page.text
            self.csrf = found.group(1)
        return answer

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def post(self, path: str, data: dict | None = None, csrf: bool = True) -> httpx.Response:
        body = dict(data or {})
        if csrf:
            body["csrf"] = self.csrf
        return self.client.post(path, data=body)

    def close(self) -> None:
        self.client.close()


def api_token(url: str, name: str, password: str = PASSWORD) -> str:
    answer = httpx.post(url + "/api/token", json={"username": name, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]
