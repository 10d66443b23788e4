"""Every route of the console against every role and a foreign domain's objects.

The table names each route once: who may use it, whether its objects belong to a
domain, and whether it changes state (then it needs the CSRF token). Expected:
401 without a login, 403 for a role that may not, 404 for another domain's object
(exactly as for one that does not exist), the CSRF check on every state-changing
form, and the foreign object left as it was. A route added without an entry in the
table fails `test_every_route_is_in_the_table`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gateway.store import quarantine
from gateway.web.app import routes_of
from tests.support.console import PEOPLE, Browser, api_token

OP, STAFF, ADMIN = "operator", "abuse-staff", "domain-admin"
ALL = (OP, STAFF, ADMIN)
QUARANTINE = (OP, STAFF)
SETTINGS = (OP, ADMIN)


@dataclass(frozen=True)
class Spec:
    roles: tuple[str, ...] | None  # None: public
    api: bool = False  # bearer token, else the session cookie
    changes: bool = False  # a POST/PUT/DELETE that must carry the CSRF token (pages)
    scoped: str | None = None  # the path parameter naming a domain's object
    body: dict[str, Any] = field(default_factory=dict)
    ok: int = 200  # what the route answers its own users (GET)
    refused: int = 403  # what other roles hear (404: nothing says the page exists)


ITEM, DOMAIN = "item_id", "domain"
TRIAL = "From: a@sender.test\r\nSubject: trial\r\n\r\nbody\r\n"  # a dry run's message
ROUTES: dict[tuple[str, str], Spec] = {
    ("GET", "/login"): Spec(None),
    ("POST", "/login"): Spec(None),
    ("POST", "/logout"): Spec(ALL, changes=True),
    ("GET", "/"): Spec(ALL, ok=303),  # to the role's first page
    ("GET", "/password"): Spec(ALL),
    ("POST", "/password"): Spec(ALL, changes=True),
    ("GET", "/quarantine"): Spec(QUARANTINE),
    ("GET", "/quarantine/{item_id}"): Spec(QUARANTINE, scoped=ITEM),
    ("GET", "/quarantine/{item_id}/html"): Spec(QUARANTINE, scoped=ITEM),
    ("GET", "/quarantine/{item_id}/parts/{part_id}"): Spec(QUARANTINE, scoped=ITEM),
    ("POST", "/quarantine/bulk"): Spec(QUARANTINE, changes=True, body={"op": "delete"}),
    ("POST", "/quarantine/{item_id}/release"): Spec(QUARANTINE, changes=True, scoped=ITEM),
    ("POST", "/quarantine/{item_id}/delete"): Spec(QUARANTINE, changes=True, scoped=ITEM),
    ("POST", "/quarantine/{item_id}/confirm-spam"): Spec(QUARANTINE, changes=True, scoped=ITEM),
    ("GET", "/domains/{domain}/lists"): Spec(SETTINGS, scoped=DOMAIN),
    ("POST", "/domains/{domain}/lists"): Spec(
        SETTINGS, changes=True, scoped=DOMAIN, body={"list": "block", "value": "192.0.2.99"}
    ),
    ("POST", "/domains/{domain}/lists/remove"): Spec(
        SETTINGS, changes=True, scoped=DOMAIN, body={"list": "block", "value": "192.0.2.98"}
    ),
    ("GET", "/domains/{domain}/policies"): Spec(SETTINGS, scoped=DOMAIN),
    ("POST", "/domains/{domain}/policies"): Spec(
        SETTINGS, changes=True, scoped=DOMAIN, body={"mailbox": "bob", "mode": "detect"}
    ),
    ("GET", "/domains/{domain}/rules"): Spec(SETTINGS, scoped=DOMAIN),
    ("POST", "/domains/{domain}/rules"): Spec(
        SETTINGS, changes=True, scoped=DOMAIN, body={"text": "thresholds: {tag: 4.0}\n"}
    ),
    ("POST", "/domains/{domain}/rules/rollback"): Spec(
        SETTINGS, changes=True, scoped=DOMAIN, body={"version": "1"}
    ),
    ("POST", "/domains/{domain}/rules/test"): Spec(
        SETTINGS, changes=True, scoped=DOMAIN, body={"text": "rules: []\n", "message": TRIAL}
    ),
    ("GET", "/domains/{domain}/report"): Spec(SETTINGS, scoped=DOMAIN),
    ("GET", "/domains/{domain}/thresholds"): Spec(SETTINGS, scoped=DOMAIN),
    ("GET", "/domains/{domain}/report-addresses"): Spec(SETTINGS, scoped=DOMAIN),
    ("POST", "/domains/{domain}/report-addresses"): Spec(
        SETTINGS, changes=True, scoped=DOMAIN, body={"spam": "junk"}
    ),
    ("POST", "/domains/{domain}/thresholds"): Spec(
        SETTINGS, changes=True, scoped=DOMAIN, body={"tag": "4"}
    ),
    ("GET", "/audit"): Spec((OP, ADMIN)),
    ("GET", "/users"): Spec((OP,)),
    ("GET", "/queue"): Spec((OP,), refused=404),
    ("GET", "/nodes"): Spec((OP,), refused=404),
    ("POST", "/queue/control"): Spec((OP,), changes=True, refused=404, body={"op": "flush"}),
    ("POST", "/users"): Spec((OP,), changes=True, body={"name": "x", "role": "operator"}),
    ("POST", "/users/{name}/remove"): Spec((OP,), changes=True),
    # the JSON API: bearer tokens, so no CSRF token
    ("POST", "/api/token"): Spec(None, api=True),
    ("GET", "/api/openapi.json"): Spec(None, api=True),
    ("GET", "/api/quarantine"): Spec(QUARANTINE, api=True),
    ("GET", "/api/queue"): Spec((OP,), api=True, refused=404),
    ("GET", "/api/nodes"): Spec((OP,), api=True, refused=404),
    ("POST", "/api/queue/control"): Spec((OP,), api=True, refused=404, body={"op": "flush"}),
    # no request is made here: the operator hears 404 for the unknown id, everyone else too
    ("GET", "/api/queue/requests/{request_id}"): Spec((OP,), api=True, refused=404, ok=404),
    ("GET", "/api/quarantine/{item_id}"): Spec(QUARANTINE, api=True, scoped=ITEM),
    ("POST", "/api/quarantine/bulk"): Spec(QUARANTINE, api=True, body={"op": "delete"}),
    ("POST", "/api/quarantine/{item_id}/release"): Spec(QUARANTINE, api=True, scoped=ITEM),
    ("POST", "/api/quarantine/{item_id}/delete"): Spec(QUARANTINE, api=True, scoped=ITEM),
    ("POST", "/api/quarantine/{item_id}/confirm-spam"): Spec(QUARANTINE, api=True, scoped=ITEM),
    ("GET", "/api/domains/{domain}/lists"): Spec(SETTINGS, api=True, scoped=DOMAIN),
    ("POST", "/api/domains/{domain}/lists"): Spec(
        SETTINGS, api=True, scoped=DOMAIN, body={"list": "block", "value": "192.0.2.97"}
    ),
    ("DELETE", "/api/domains/{domain}/lists"): Spec(SETTINGS, api=True, scoped=DOMAIN),
    ("GET", "/api/domains/{domain}/policies/{mailbox}"): Spec(SETTINGS, api=True, scoped=DOMAIN),
    ("GET", "/api/domains/{domain}/rules"): Spec(SETTINGS, api=True, scoped=DOMAIN),
    ("GET", "/api/domains/{domain}/report"): Spec(SETTINGS, api=True, scoped=DOMAIN),
    ("GET", "/api/domains/{domain}/thresholds"): Spec(SETTINGS, api=True, scoped=DOMAIN),
    ("GET", "/api/domains/{domain}/report-addresses"): Spec(SETTINGS, api=True, scoped=DOMAIN),
    ("PUT", "/api/domains/{domain}/report-addresses"): Spec(
        SETTINGS, api=True, scoped=DOMAIN, body={"spam": "junk"}
    ),
    ("PUT", "/api/domains/{domain}/thresholds"): Spec(
        SETTINGS, api=True, scoped=DOMAIN, body={"tag": 4.0}
    ),
    ("PUT", "/api/domains/{domain}/rules"): Spec(
        SETTINGS, api=True, scoped=DOMAIN, body={"text": "thresholds: {tag: 4.0}\n"}
    ),
    ("POST", "/api/domains/{domain}/rules/rollback"): Spec(
        SETTINGS, api=True, scoped=DOMAIN, body={"version": 1}
    ),
    ("POST", "/api/domains/{domain}/rules/test"): Spec(
        SETTINGS, api=True, scoped=DOMAIN, body={"text": "rules: []\n", "message": TRIAL}
    ),
    ("PUT", "/api/domains/{domain}/policies/{mailbox}"): Spec(
        SETTINGS, api=True, scoped=DOMAIN, body={"mode": "detect"}
    ),
}
PROTECTED = [key for key, spec in ROUTES.items() if spec.roles is not None]


def app_routes(console) -> set[tuple[str, str]]:
    return routes_of(console.gateway.gateway.web.config.app)


def test_every_route_is_in_the_table(console):
    found = app_routes(console)
    assert found - set(ROUTES) == set(), "routes without an entry in ROUTES: add them"
    assert set(ROUTES) - found == set(), "entries in ROUTES for routes that do not exist"


@pytest.fixture(scope="module")
def sessions(console):
    """role -> (a logged-in browser, an API token)."""
    made = {}
    for role, (name, _) in PEOPLE.items():
        browser = Browser(console.url)
        assert browser.login(name).status_code == 303
        made[role] = (browser, api_token(console.url, name))
    yield made
    for browser, _ in made.values():
        browser.close()


def fill(path: str, console, foreign: bool) -> str:
    mine = "attachment" if "{part_id}" in path else "own"
    item = console.items["foreign" if foreign else mine]
    return (
        path.replace("{item_id}", item)
        .replace("{domain}", "other.test" if foreign else "example.test")
        .replace("{part_id}", "2")
        .replace("{mailbox}", "bob")
        .replace("{name}", "nobody")
        .replace("{request_id}", "0" * 32)
    )


def call(console, method: str, path: str, spec: Spec, who=None, csrf: bool = True):
    url = console.url + path
    params = {"list": "block", "value": "192.0.2.96"} if method == "DELETE" else None
    if spec.api:
        headers = {"Authorization": f"Bearer {who[1]}"} if who else {}
        body = spec.body if method in ("POST", "PUT") else None
        return httpx.request(method, url, json=body, params=params, headers=headers, timeout=10)
    if who is None:
        return httpx.request(method, url, data=spec.body or None, timeout=10)
    browser: Browser = who[0]
    if method == "GET":
        return browser.get(path)
    return browser.post(path, spec.body, csrf=csrf)


def held(console, key: str) -> str:
    return quarantine.get(console.engine, console.items[key])["status"]


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_route_against_every_role(console, sessions, method, path):
    spec = ROUTES[(method, path)]
    # without a login: 401, and a JSON body for the API
    anonymous = call(console, method, fill(path, console, foreign=False), spec)
    assert anonymous.status_code == 401, anonymous.text
    if spec.api:
        assert "error" in anonymous.json()
    for role in ALL:
        who = sessions[role]
        if role not in spec.roles:
            refused = call(console, method, fill(path, console, foreign=False), spec, who)
            assert refused.status_code == spec.refused, (role, refused.text)
            continue
        if spec.scoped and role != OP:  # an operator has no foreign domain
            foreign = call(console, method, fill(path, console, foreign=True), spec, who)
            assert foreign.status_code == 404, (role, foreign.text)
            if spec.api:
                assert "error" in foreign.json()
            assert held(console, "foreign") == quarantine.HELD
        if spec.changes:
            forged = call(console, method, fill(path, console, False), spec, who, csrf=False)
            assert forged.status_code == 403, (role, forged.text)
            assert held(console, "own") == quarantine.HELD
        elif method == "GET":
            mine = call(console, method, fill(path, console, foreign=False), spec, who)
            assert mine.status_code == spec.ok, (role, path, mine.text)


def test_foreign_ids_in_bulk_and_filters_find_nothing(console, sessions):
    browser, token = sessions[STAFF]
    bearer = {"Authorization": f"Bearer {token}"}
    bulk = httpx.post(
        console.url + "/api/quarantine/bulk",
        json={"op": "delete", "ids": [console.items["foreign"]]},
        headers=bearer,
    )
    assert bulk.status_code == 200
    assert bulk.json()["done"] == []
    assert "no such quarantine item" in bulk.json()["failed"][console.items["foreign"]]
    assert held(console, "foreign") == quarantine.HELD
    listed = httpx.get(
        console.url + "/api/quarantine", params={"domain": "other.test"}, headers=bearer
    ).json()
    assert listed["items"] == []
    mine = httpx.get(console.url + "/api/quarantine", headers=bearer).json()["items"]
    assert {i["domain"] for i in mine} == {"example.test"}
    page = browser.get("/quarantine?subject=theirs")
    assert "Nothing held matches." in page.text
    assert console.items["foreign"] not in page.text
    # the operator sees both domains
    op_items = httpx.get(
        console.url + "/api/quarantine",
        headers={"Authorization": f"Bearer {sessions[OP][1]}"},
    ).json()["items"]
    assert {"example.test", "other.test"} <= {i["domain"] for i in op_items}


def test_openapi_describes_the_api(console):
    doc = httpx.get(console.url + "/api/openapi.json").json()
    for path in ("/api/token", "/api/quarantine", "/api/quarantine/{item_id}/release"):
        assert path in doc["paths"]
    assert doc["paths"]["/api/token"]["post"]["responses"]["200"]
