"""A domain admin sets the domain's spam thresholds in the console and over the API:
stored as a new version of the domain's rules (the rest of the text kept), checked
(numbers, rising from tag to reject together with the operator's defaults), audited,
and 404 for another domain."""

from __future__ import annotations

import httpx

from gateway.store import audit, rules_store
from tests.support.console import Browser, api_token

RULES = (
    "domain: example.test\n# our rules\nthresholds:\n  tag: 3\nrules:\n"
    "  - name: pills\n    when: {subject: {contains: pills}}\n    then: {score: 3}\n"
)


def test_admin_sets_thresholds_on_the_page(console):
    admin = Browser(console.url)
    admin.login("ada")
    assert admin.post("/domains/example.test/rules", {"text": RULES}).status_code == 200
    page = admin.get("/domains/example.test/thresholds")
    assert page.status_code == 200
    assert 'data-key="tag">3.0</td>' in page.text  # the domain's own
    assert 'data-key="reject">1000.0</td>' in page.text  # the operator's (console config)
    saved = admin.post(
        "/domains/example.test/thresholds", {"tag": "4.5", "quarantine": "9", "reject": "never"}
    )
    assert saved.status_code == 200, saved.text
    assert "Saved as rules version" in saved.text
    assert 'data-key="reject">never</td>' in saved.text
    text = rules_store.current(console.engine, "example.test").text
    assert "thresholds: {tag: 4.5, quarantine: 9, reject: null}" in text
    assert "# our rules" in text and "name: pills" in text and "  tag: 3" not in text
    # falling thresholds, words: refused with the reason, nothing saved
    version = rules_store.current(console.engine, "example.test").version
    falling = admin.post("/domains/example.test/thresholds", {"tag": "12", "quarantine": "9"})
    assert falling.status_code == 422
    assert "tag (12) is above quarantine (9)" in falling.text
    words = admin.post("/domains/example.test/thresholds", {"tag": "high"})
    assert words.status_code == 422 and "is not a number" in words.text
    assert rules_store.current(console.engine, "example.test").version == version
    # empty fields: back to the operator's defaults
    reset = admin.post("/domains/example.test/thresholds", {"tag": "", "quarantine": ""})
    assert reset.status_code == 200
    assert "thresholds" not in rules_store.current(console.engine, "example.test").text
    rows = [r for r in audit.entries(console.engine, object_id="example.test")]
    sets = [r for r in rows if r["action"] == "thresholds.set"]
    assert sets[0]["before"]["set"] == {"tag": 4.5, "quarantine": 9.0, "reject": None}
    assert sets[0]["after"]["set"] == {} and sets[0]["actor"] == "ada"
    assert (
        admin.post("/domains/example.test/thresholds", {"tag": "5"}, csrf=False).status_code == 403
    )
    assert admin.get("/domains/other.test/thresholds").status_code == 404
    admin.close()


def test_thresholds_over_the_api(console):
    bearer = {"Authorization": f"Bearer {api_token(console.url, 'ada')}"}
    url = f"{console.url}/api/domains/example.test/thresholds"
    put = httpx.put(url, json={"tag": 2.5, "quarantine": None}, headers=bearer)
    assert put.status_code == 200, put.text
    got = httpx.get(url, headers=bearer).json()
    assert got["set"] == {"tag": 2.5, "quarantine": None}
    assert got["effective"] == {"tag": 2.5, "quarantine": None, "reject": 1000.0}
    assert got["defaults"]["reject"] == 1000.0
    above_default = httpx.put(url, json={"tag": 2000}, headers=bearer)
    assert (
        above_default.status_code == 422
        and "between -1000 and 1000" in above_default.json()["error"]
    )
    falling = httpx.put(url, json={"quarantine": 1}, headers=bearer)
    assert falling.status_code == 422
    assert falling.json()["error"] == (
        "tag (5, the operator's default) is above quarantine (1): thresholds must rise "
        "from tag to quarantine to reject"
    )
    wrong = httpx.put(url, json={"tag": "high"}, headers=bearer)
    assert wrong.status_code == 422
    foreign = httpx.put(
        f"{console.url}/api/domains/other.test/thresholds", json={"tag": 1}, headers=bearer
    )
    assert foreign.status_code == 404
    assert (
        httpx.get(f"{console.url}/api/domains/other.test/thresholds", headers=bearer).status_code
        == 404
    )
