"""A domain admin tries a draft of the rules on a pasted or uploaded message before
saving it: which rules hit, the symbols and score, the action per recipient, from the
gateway's own chain and policy. A broken draft shows its errors by line; nothing is
saved; a message too large is refused with a clear error; each trial is audited."""

from __future__ import annotations

import base64

import httpx

from gateway.store import audit, rules_store
from tests.support.console import Browser, api_token

DRAFT = (
    "domain: example.test\n"
    "thresholds: {tag: 4.0}\n"
    "rules:\n"
    "  - name: pills\n"
    "    when: {subject: {contains: pills}}\n"
    "    then: {action: quarantine}\n"
    "  - name: friendly\n"
    "    when: {subject: {contains: hello}}\n"
    "    then: {score: -2}\n"
)
BROKEN = DRAFT.replace("then: {action: quarantine}", "then: {acton: quarantine}")
PILLS = (
    "From: seller@shop.test\r\nTo: bob@example.test, carol@other.test\r\n"
    "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <dry-1@shop.test>\r\n"
    "Subject: cheap pills\r\n\r\nbuy now\r\n"
)


def versions(console) -> int:
    return len(rules_store.history(console.engine, "example.test"))


def test_dry_run_in_the_editor_shows_hits_and_saves_nothing(console):
    before = versions(console)
    admin = Browser(console.url)
    admin.login("ada")
    wrong = admin.post("/domains/example.test/rules/test", {"text": BROKEN, "message": PILLS})
    assert wrong.status_code == 422
    assert 'data-line="6"' in wrong.text and "acton" in wrong.text
    assert 'id="trial"' not in wrong.text
    page = admin.post("/domains/example.test/rules/test", {"text": DRAFT, "message": PILLS})
    assert page.status_code == 200, page.text
    assert '<code class="fired">pills</code>' in page.text
    assert 'class="rcpt">bob@example.test</span>' in page.text
    assert 'class="action tag">quarantine</span>' in page.text
    assert "RULE_PILLS" in page.text
    assert "carol@other.test" not in page.text.split('id="trial"')[1]  # only this domain's
    assert DRAFT.split("\n")[3] in page.text  # the draft stays in the editor
    assert versions(console) == before  # nothing saved
    # uploaded instead of pasted (multipart, as the browser sends the file)
    token = admin.csrf
    upload = admin.client.post(
        "/domains/example.test/rules/test",
        data={"text": DRAFT, "csrf": token},
        files={"upload": ("m.eml", PILLS.replace("pills", "hello").encode(), "message/rfc822")},
    )
    assert upload.status_code == 200, upload.text
    assert '<code class="fired">friendly</code>' in upload.text
    assert 'class="action tag">accept</span>' in upload.text
    # the CSRF token is required as on every form
    forged = admin.post("/domains/example.test/rules/test", {"text": DRAFT}, csrf=False)
    assert forged.status_code == 403
    # too large: a clear error, nothing run
    big = PILLS + "x" * (2 * 1024 * 1024)
    refused = admin.post("/domains/example.test/rules/test", {"text": DRAFT, "message": big})
    assert refused.status_code == 413
    assert "a dry run takes at most 2,097,152 bytes" in refused.text
    rows = audit.entries(console.engine, object_id="example.test")
    trials = [r for r in rows if r["action"] == "rules.test"]
    assert len(trials) == 2 and trials[0]["actor"] == "ada"
    assert trials[1]["after"]["fired"] == ["pills"]
    assert trials[1]["after"]["actions"] == {"bob@example.test": "quarantine"}
    admin.close()


def test_dry_run_over_the_api(console):
    bearer = {"Authorization": f"Bearer {api_token(console.url, 'ada')}"}
    url = f"{console.url}/api/domains/example.test/rules/test"
    refused = httpx.post(url, json={"text": BROKEN, "message": PILLS}, headers=bearer)
    assert refused.status_code == 422
    assert [e["line"] for e in refused.json()["errors"]] == [6]
    got = httpx.post(url, json={"text": DRAFT, "message": PILLS}, headers=bearer, timeout=30)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["fired"] == ["pills"]
    assert body["rcpts"] == ["bob@example.test"] and body["mail_from"] == "seller@shop.test"
    assert body["thresholds"]["tag"] == 4.0  # the draft's, over the operator's default
    (decision,) = body["decisions"]
    assert decision["action"] == "quarantine"
    assert "RULE_PILLS" in [s["name"] for s in decision["symbols"]]
    # bytes as base64, recipients given
    encoded = base64.b64encode(PILLS.replace("pills", "hello").encode()).decode()
    friendly = httpx.post(
        url,
        json={"text": DRAFT, "message_base64": encoded, "rcpts": ["x@example.test"]},
        headers=bearer,
        timeout=30,
    ).json()
    assert friendly["fired"] == ["friendly"] and friendly["rcpts"] == ["x@example.test"]
    score = {s["name"]: s["score"] for s in friendly["decisions"][0]["symbols"]}
    assert score["RULE_FRIENDLY"] == -2.0
    # another domain's recipient, another domain's rules, nothing to try: refused
    other = httpx.post(
        url, json={"text": DRAFT, "message": PILLS, "rcpts": ["carol@other.test"]}, headers=bearer
    )
    assert other.status_code == 422 and "not a recipient of example.test" in other.json()["error"]
    foreign = httpx.post(
        f"{console.url}/api/domains/other.test/rules/test",
        json={"text": DRAFT.replace("example.test", "other.test"), "message": PILLS},
        headers=bearer,
    )
    assert foreign.status_code == 404
    empty = httpx.post(url, json={"text": DRAFT, "message": ""}, headers=bearer)
    assert empty.status_code == 422 and "paste or upload" in empty.json()["error"]
    big = httpx.post(
        url, json={"text": DRAFT, "message": PILLS + "x" * (3 << 20)}, headers=bearer, timeout=30
    )
    assert big.status_code == 413 and "at most" in big.json()["error"]
