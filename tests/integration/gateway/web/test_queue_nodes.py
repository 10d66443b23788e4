"""Operators see the queue and the nodes in the console and over the API: a real
gateway whose next hop is down holds a deferred job (age, attempts, last error), its
heartbeat reports the node up with its queue size and parts; the queue actions (hold,
release, retry, delete) reach the running gateway and are audited. Anyone else: 404."""

from __future__ import annotations

import smtplib

import httpx
import pytest

from gateway.store import audit, node_status, queue_view, users
from tests.support.console import PASSWORD, Browser, api_token
from tests.support.gateway import InProcessGateway, write_config
from tests.support.mail import message
from tests.support.smtp_sink import free_port
from tests.support.wait import wait_until


def until(predicate, timeout: float = 15.0):
    return wait_until(predicate, timeout, 0.1)


@pytest.fixture(scope="module")
def stuck(tmp_path_factory):
    """A gateway with [web] whose next hop refuses connections, and one job waiting."""
    directory = tmp_path_factory.mktemp("queue")
    secret = directory / "web.key"
    secret.write_text("test-signing-key-" + "q" * 32)
    port = free_port()
    config = write_config(
        directory,
        f"127.0.0.1:{free_port()}",  # nothing listens: every attempt fails
        {
            "web": {"listen": f"127.0.0.1:{port}", "secret_file": str(secret)},
            "report": {"heartbeat_interval": 0.3, "probe_timeout": 1.0},
            "smtp": {"node_name": "node-q"},
        },
    )
    gw = InProcessGateway(config).start()
    try:
        engine = gw.gateway.db.engine
        users.add(engine, "olga", "operator", (), PASSWORD)
        users.add(engine, "ada", "domain-admin", ("example.test",), PASSWORD)
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.sendmail("alice@sender.test", ["bob@example.test"], message("stuck mail"))
        yield gw, f"http://127.0.0.1:{port}"
    finally:
        gw.stop()


def reported(engine) -> dict:
    rows = {r["node"]: r for r in node_status.all_nodes(engine)}
    return rows.get("node-q") or {}


def test_nodes_and_queue_for_operators(stuck):
    gw, url = stuck
    engine = gw.gateway.db.engine
    row = until(lambda: (r := reported(engine)) and r["queue"]["deferred"] == 1 and r)
    assert row, reported(engine)
    job = row["jobs"][0]
    assert job["attempts"] >= 1 and "127.0.0.1" in (job["last_error"] or ""), job
    olga = Browser(url)
    olga.login("olga")
    page = olga.get("/nodes")
    assert page.status_code == 200
    assert 'data-node="node-q"' in page.text and 'class="state ok">up</td>' in page.text
    bearer = {"Authorization": f"Bearer {api_token(url, 'olga')}"}
    (node,) = httpx.get(url + "/api/nodes", headers=bearer).json()["nodes"]
    assert node["node"] == "node-q" and node["up"] is True
    assert node["queue"]["jobs"] == 1 and node["queue"]["deferred"] == 1
    assert node["next_hop"] == "failed" and node["redis"] is None and node["clamd"] is None
    assert node["database"] == "ok" and node["seconds_since_report"] < 3
    queue = httpx.get(url + "/api/queue", headers=bearer).json()
    (live,) = queue["this_node"]["jobs"]
    assert live["id"] == job["id"] and live["pending"] == ["bob@example.test"]
    assert queue["nodes"][0]["jobs"][0]["id"] == job["id"]
    listed = olga.get("/queue")
    assert f'data-job="{job["id"]}"' in listed.text and "Last error" in listed.text

    # hold on the page, release and retry over the API: the running gateway answers
    held = olga.post("/queue/control", {"op": "hold", "job": job["id"]})
    assert held.status_code == 200 and 'id="answer"' in held.text, held.text
    assert [r["state"] for r in queue_view.rows(gw.settings.spool.path)] == ["held"]
    released = httpx.post(
        url + "/api/queue/control", json={"op": "release", "job": job["id"]}, headers=bearer
    ).json()
    assert released["ok"] is True, released
    retried = httpx.post(url + "/api/queue/control", json={"op": "flush"}, headers=bearer)
    assert retried.status_code == 200 and retried.json()["ok"] is True
    unknown = httpx.post(
        url + "/api/queue/control", json={"op": "delete", "job": "nope"}, headers=bearer
    )
    assert unknown.status_code == 404
    deleted = olga.post("/queue/control", {"op": "delete", "job": job["id"]})
    assert deleted.status_code == 200
    until(lambda: queue_view.rows(gw.settings.spool.path) == [], 15)
    until(lambda: reported(engine)["queue"]["jobs"] == 0, 15)
    actions = [r["action"] for r in audit.entries(engine, limit=10) if r["actor"] == "olga"]
    assert actions[:4] == ["queue.delete", "queue.flush", "queue.release", "queue.hold"]
    forged = olga.post("/queue/control", {"op": "flush"}, csrf=False)
    assert forged.status_code == 403
    olga.close()


def test_everyone_else_hears_404(stuck):
    _, url = stuck
    ada = Browser(url)
    ada.login("ada")
    for path in ("/queue", "/nodes"):
        assert ada.get(path).status_code == 404
    assert ada.post("/queue/control", {"op": "flush"}).status_code == 404
    bearer = {"Authorization": f"Bearer {api_token(url, 'ada')}"}
    for path in ("/api/queue", "/api/nodes"):
        answer = httpx.get(url + path, headers=bearer)
        assert answer.status_code == 404 and "error" in answer.json()
    assert httpx.get(url + "/api/nodes").status_code == 401
    ada.close()
