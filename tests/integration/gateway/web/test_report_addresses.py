"""A domain admin chooses the domain's report addresses (where users send "this was
spam" and the like) in the console and over the API: stored with the domain's rules,
checked, audited, 404 for another domain; and the gateway follows it within seconds:
mail to the new address is recorded as a report, not delivered, at that domain only."""

from __future__ import annotations

import smtplib
import time

import httpx

from gateway.store import audit, rules_store
from tests.support.console import Browser, api_token


def data_reply(port: int, rcpt: str, subject: str) -> tuple[int, bytes]:
    body = (
        f"From: bob@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
        "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <"
        f"{subject.replace(' ', '-')}@example.test>\r\n\r\nthis one was spam\r\n"
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        client.mail("bob@example.test")
        client.rcpt(rcpt)
        return client.data(body.encode())


def test_admin_sets_report_addresses_and_the_gateway_follows(console):
    admin = Browser(console.url)
    admin.login("ada")
    page = admin.get("/domains/example.test/report-addresses")
    assert page.status_code == 200
    assert 'data-kind="spam">none</td>' in page.text  # the console's config sets none
    bad = admin.post("/domains/example.test/report-addresses", {"spam": "abuse"})
    assert bad.status_code == 422 and "abuse@ always receives its mail" in bad.text
    twice = admin.post("/domains/example.test/report-addresses", {"spam": "junk", "ham": "junk"})
    assert twice.status_code == 422 and "junk@ already takes the spam reports" in twice.text
    saved = admin.post(
        "/domains/example.test/report-addresses", {"spam": "Junk-Report", "virus": "none"}
    )
    assert saved.status_code == 200, saved.text
    assert 'data-kind="spam">junk-report@example.test</td>' in saved.text
    text = rules_store.current(console.engine, "example.test").text
    assert 'report_addresses: {spam: "junk-report", virus: null}' in text
    entry = audit.entries(console.engine, object_id="example.test")[0]
    assert entry["action"] == "report_addresses.set" and entry["actor"] == "ada"
    assert entry["after"]["set"] == {"spam": "junk-report", "virus": None}
    assert admin.get("/domains/other.test/report-addresses").status_code == 404
    forged = admin.post("/domains/example.test/report-addresses", {"spam": "x"}, csrf=False)
    assert forged.status_code == 403
    admin.close()

    # the gateway (the console's own node) follows within seconds
    deadline = time.monotonic() + 10
    while True:
        code, reply = data_reply(console.gateway.port, "junk-report@example.test", "report one")
        if b"report recorded" in reply or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert code == 250 and b"report recorded" in reply, reply
    # the same local part at the other domain is an ordinary recipient
    code, reply = data_reply(console.gateway.port, "junk-report@other.test", "not a report")
    assert code == 250 and b"report recorded" not in reply


def test_report_addresses_over_the_api(console):
    bearer = {"Authorization": f"Bearer {api_token(console.url, 'ada')}"}
    url = f"{console.url}/api/domains/example.test/report-addresses"
    put = httpx.put(url, json={"ham": "not-spam"}, headers=bearer)
    assert put.status_code == 200, put.text
    got = httpx.get(url, headers=bearer).json()
    assert got["set"] == {"ham": "not-spam"}
    assert got["effective"] == {"spam": None, "ham": "not-spam@example.test", "virus": None}
    wrong = httpx.put(url, json={"spam": "a b@c"}, headers=bearer)
    assert wrong.status_code == 422 and "local part only" in wrong.json()["error"]
    foreign = f"{console.url}/api/domains/other.test/report-addresses"
    assert httpx.put(foreign, json={"spam": "x"}, headers=bearer).status_code == 404
    assert httpx.get(foreign, headers=bearer).status_code == 404
