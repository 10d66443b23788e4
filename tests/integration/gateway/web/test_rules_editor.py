"""A domain admin edits the domain's rules in the console: a mistake is shown beside
its line and nothing is saved; the fix is saved as a new version; history and
rollback; the same over the API (422 with line numbers); all audited."""

from __future__ import annotations

import httpx

from gateway.store import audit, rules_store
from tests.support.console import Browser, api_token

GOOD = (
    "domain: example.test\nrules:\n  - name: pills\n"
    "    when: {subject: {contains: pills}}\n    then: {score: 3}\n"
)
BAD = GOOD.replace("then: {score: 3}", "then: {scroe: 3}")


def test_admin_fixes_a_mistake_saves_and_rolls_back(console):
    admin = Browser(console.url)
    admin.login("ada")
    page = admin.get("/domains/example.test/rules")
    assert page.status_code == 200
    # other tests of this package's console may have saved versions before
    old = len(rules_store.history(console.engine, "example.test"))
    assert ("No versions yet." in page.text) == (old == 0)
    wrong = admin.post("/domains/example.test/rules", {"text": BAD})
    assert wrong.status_code == 422
    assert 'data-line="5"' in wrong.text and "Not saved" in wrong.text
    assert len(rules_store.history(console.engine, "example.test")) == old
    saved = admin.post("/domains/example.test/rules", {"text": GOOD, "comment": "first"})
    assert saved.status_code == 200 and f"Saved as version {old + 1}." in saved.text
    second = GOOD.replace("score: 3", "score: 5")
    assert admin.post("/domains/example.test/rules", {"text": second}).status_code == 200
    assert rules_store.current(console.engine, "example.test").text == second
    back = admin.post("/domains/example.test/rules/rollback", {"version": str(old + 1)})
    assert back.status_code == 200 and f"Saved as version {old + 3}." in back.text
    now = rules_store.current(console.engine, "example.test")
    assert now.text == GOOD and now.copied_from == old + 1 and now.created_by == "ada"
    actions = [r["action"] for r in audit.entries(console.engine, object_id="example.test")]
    assert actions[:3] == ["rules.rollback", "rules.save", "rules.save"]
    admin.close()


def test_rules_over_the_api_with_line_numbers(console):
    bearer = {"Authorization": f"Bearer {api_token(console.url, 'ada')}"}
    url = f"{console.url}/api/domains/example.test/rules"
    refused = httpx.put(url, json={"text": BAD}, headers=bearer)
    assert refused.status_code == 422
    assert [e["line"] for e in refused.json()["errors"]] == [5]
    ok = httpx.put(url, json={"text": GOOD, "comment": "api"}, headers=bearer)
    assert ok.status_code == 200, ok.text
    got = httpx.get(url, headers=bearer).json()
    assert got["text"] == GOOD and got["version"] == ok.json()["version"]
    assert got["history"][0]["comment"] == "api"
    foreign = httpx.get(f"{console.url}/api/domains/other.test/rules", headers=bearer)
    assert foreign.status_code == 404
