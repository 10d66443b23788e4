"""What staff and admins do in the console, end to end: the mail held through SMTP,
released from the page, arriving at the sink; confirm spam with a block; lists and
policies over the API; every action in the audit log, each seeing only their own."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from gateway.lists import records
from gateway.store import audit, ledger, quarantine
from tests.support.console import Browser, api_token, held_mail


def test_staff_release_from_the_page_delivers_and_records(console):
    staff = Browser(console.url)
    assert staff.login("sam").status_code == 303
    item = console.items["own2"]
    listing = staff.get("/quarantine?subject=mine+two")
    assert item in listing.text and "spammer@sender.test" in listing.text
    page = staff.get(f"/quarantine/{item}")
    assert page.status_code == 200 and "body of mine two" in page.text
    answer = staff.post(f"/quarantine/{item}/release")
    assert answer.status_code == 303
    got = console.arrived(b"body of mine two")
    assert got and list(got[0].rcpts) == ["bob@example.test"]
    assert got[0].data.startswith(b"X-Mailwarden-Released: " + item.encode())
    again = staff.post(f"/quarantine/{item}/release")
    assert again.status_code == 409 and "not held" in again.text
    with console.engine.connect() as conn:
        fb = conn.execute(select(ledger.feedback).where(ledger.feedback.c.actor == "sam")).all()
    assert [(f.kind, f.source) for f in fb] == [("false_positive", "release")]
    rows = audit.entries(console.engine, object_id=item)
    assert [(r["action"], r["actor"], r["address"]) for r in rows] == [
        ("quarantine.release", "sam", "127.0.0.1")
    ]
    assert rows[0]["before"] == {"status": "held"}
    assert rows[0]["after"] == {"status": "release_requested"}
    staff.close()


def test_confirm_spam_blocks_the_sender_for_that_domain_only(console):
    # its own sender: once blocked, that sender's later mail is refused at RCPT
    console.send(
        held_mail("confirm me", "bob@example.test"), ["bob@example.test"], "confirm@sender.test"
    )
    item = console.held_for("confirm me")
    token = api_token(console.url, "sam")
    answer = httpx.post(
        f"{console.url}/api/quarantine/{item}/confirm-spam",
        json={"block": "sender"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["blocked"] == {"kind": "sender", "value": "confirm@sender.test"}
    _, entries = records.load_entries(console.engine)
    blocks = [(e.list, e.kind, e.value, e.domain) for e in entries if e.added_by == "sam"]
    assert blocks == [("block", "sender", "confirm@sender.test", "example.test")]
    with console.engine.connect() as conn:
        kinds = (
            conn.execute(select(ledger.feedback.c.kind).where(ledger.feedback.c.source == "abuse"))
            .scalars()
            .all()
        )
    assert kinds == ["confirmed_spam"]
    actions = [r["action"] for r in audit.entries(console.engine) if r["actor"] == "sam"]
    assert "quarantine.confirm-spam" in actions and "lists.add" in actions


def test_release_without_false_positive_and_bulk_delete(console):
    console.send(held_mail("bulk one", "bob@example.test"), ["bob@example.test"])
    console.send(held_mail("bulk two", "bob@example.test"), ["bob@example.test"])
    one, two = console.held_for("bulk one"), console.held_for("bulk two")
    bearer = {"Authorization": f"Bearer {api_token(console.url, 'olga')}"}
    released = httpx.post(
        f"{console.url}/api/quarantine/{one}/release",
        json={"false_positive": False},
        headers=bearer,
    )
    assert released.json() == {"id": one, "status": "release_requested", "false_positive": 0}
    bulk = httpx.post(
        f"{console.url}/api/quarantine/bulk",
        json={"op": "delete", "ids": [two, "no-such-id"]},
        headers=bearer,
    ).json()
    assert bulk["done"] == [two] and "no such quarantine item" in bulk["failed"]["no-such-id"]
    assert quarantine.get(console.engine, two)["status"] == "deleted"
    console.arrived(b"body of bulk one")
    with console.engine.connect() as conn:
        fb = conn.execute(
            select(ledger.feedback).where(ledger.feedback.c.message_id == one.split(".")[0])
        ).all()
    assert fb == []


def test_admin_lists_and_policies_over_the_api_and_the_audit_page(console):
    bearer = {"Authorization": f"Bearer {api_token(console.url, 'ada')}"}
    base = f"{console.url}/api/domains/example.test"
    added = httpx.post(
        base + "/lists", json={"list": "allow", "value": "friend@partner.test"}, headers=bearer
    )
    assert added.status_code == 201 and added.json()["kind"] == "sender"
    bad = httpx.post(base + "/lists", json={"list": "allow", "value": "1.2.3"}, headers=bearer)
    assert bad.status_code == 422 and "not an IP address" in bad.json()["error"]
    listed = httpx.get(base + "/lists", headers=bearer).json()["entries"]
    assert any(e["value"] == "friend@partner.test" for e in listed)
    gone = httpx.request(
        "DELETE",
        base + "/lists",
        params={"list": "allow", "value": "friend@partner.test"},
        headers=bearer,
    )
    assert gone.status_code == 200
    put = httpx.put(
        base + "/policies/bob", json={"mode": "detect", "keep_original": True}, headers=bearer
    )
    assert put.status_code == 200, put.text
    assert put.json()["mode"] == "detect" and put.json()["from"]["mode"] == "bob@example.test"
    assert httpx.get(base + "/policies/bob", headers=bearer).json()["keep_original"] is True
    admin = Browser(console.url)
    admin.login("ada")
    page = admin.get("/audit").text
    assert "policy.put" in page and "lists.remove" in page
    assert "other.test" not in page  # only their domains' rows
    admin.close()


def test_cli_show_json_export_and_confirm_with_by(console, tmp_path):
    from tests.integration.gateway.cli.operator_run import mailwarden

    console.send(held_mail("cli one", "bob@example.test"), ["bob@example.test"])
    item = console.held_for("cli one")
    config = str(console.gateway.config)
    shown = mailwarden("quarantine", "show", item, "--json", "-c", config)
    assert shown.returncode == 0, shown.stderr
    import json

    verdict = json.loads(shown.stdout)
    assert (
        verdict["item"]["id"] == item and verdict["message"]["mail_from"] == "spammer@sender.test"
    )
    assert verdict["recipients"][0]["action"] == "quarantine"
    out = tmp_path / "held.eml"
    exported = mailwarden("quarantine", "export", item, "--out", str(out), "-c", config)
    assert exported.returncode == 0 and b"Subject: cli one" in out.read_bytes()
    confirmed = mailwarden("quarantine", "confirm-spam", item, "--by", "ann", "-c", config)
    assert confirmed.returncode == 0, confirmed.stderr
    assert audit.entries(console.engine, object_id=item)[0]["actor"] == "ann"
    missing = mailwarden("quarantine", "show", "nope", "-c", config)
    assert missing.returncode == 2 and "no such quarantine item" in missing.stderr


def test_a_domain_admin_reads_the_monthly_report_of_their_domain_only(console):
    month = datetime.now(UTC).strftime("%Y-%m")
    token = api_token(console.url, "ada")
    got = httpx.get(
        f"{console.url}/api/domains/example.test/report",
        params={"month": month},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert got.status_code == 200, got.text
    report = got.json()
    assert report["month"] == month and "overall" not in report
    assert list(report["domains"]) == ["example.test"]
    mine = report["domains"]["example.test"]
    assert mine["counts"]["recipients"] >= 1  # the mail held through SMTP by the fixture
    assert mine["false_positive_rate"]["status"] in ("met", "missed", "not enough data")
    foreign = httpx.get(
        f"{console.url}/api/domains/other.test/report",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert foreign.status_code == 404 and foreign.json()["error"]
    bad = httpx.get(
        f"{console.url}/api/domains/example.test/report",
        params={"month": "2026-13"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert bad.status_code == 422 and "2026-13" in bad.json()["error"]

    admin = Browser(console.url)
    assert admin.login("ada").status_code == 303
    page = admin.get(f"/domains/example.test/report?month={month}")
    assert page.status_code == 200 and "example.test" in page.text
    assert "<script" not in page.text.lower()
    assert "default-src 'none'" in page.headers["content-security-policy"]
    admin.close()
