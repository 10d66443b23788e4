"""An operator on node A's console acts on jobs in node B's spool (two `mailwarden
serve` processes sharing PostgreSQL and Redis): B's next hop is down, so B holds two
deferred jobs; A's API answers 202 with a request id for each action, B picks the
request up within seconds, applies it to its own spool (one job deleted, the other
retried once its next hop is up and delivered) and writes the outcome back. A job
on no node: 404. Audited on A as a local action is."""

from __future__ import annotations

import smtplib
import time

import httpx

from gateway.store import audit, node_status, queue_view, users
from gateway.store.db import make_engine
from tests.support.cluster import answers, node_configs, start_nodes
from tests.support.console import PASSWORD, Browser, api_token
from tests.support.mail import message
from tests.support.smtp_sink import SmtpSink, free_port
from tests.support.wait import wait_until

PICKUP = 5.0  # "within a few seconds": nodes poll the table every second


def reported_jobs(engine, node: str) -> list[dict]:
    rows = {r["node"]: r for r in node_status.all_nodes(engine)}
    return (rows.get(node) or {}).get("jobs") or []


def test_an_operator_on_node_a_deletes_and_retries_jobs_of_node_b(
    tmp_path, sink, dns_server, postgres_url, redis_target
):
    web_port = free_port()
    b_hop = free_port()  # nothing listens there until the end
    secret = tmp_path / "web.key"
    secret.write_text("test-signing-key-" + "x" * 32)
    configs = node_configs(
        tmp_path,
        {"node-a": sink.address, "node-b": f"127.0.0.1:{b_hop}"},
        dns_server,
        postgres_url,
        redis_target,
        grace=2.0,
        extra={"report": {"heartbeat_interval": 0.5, "probe_timeout": 1.0}},
        console=("node-a", web_port, secret),
    )
    a, b = start_nodes(*configs.values())
    b_spool = b.settings.spool.path
    engine = make_engine(postgres_url)
    url = f"http://127.0.0.1:{web_port}"
    try:
        users.add(engine, "olga", "operator", (), PASSWORD)
        for sender, subject in (("del@sender.test", "to be deleted"),
                                ("retry@sender.test", "to be retried")):  # fmt: skip
            with smtplib.SMTP("127.0.0.1", b.port, timeout=10) as client:
                client.sendmail(sender, ["bob@example.test"], message(subject))
        # both deferred on B (its next hop refuses) and in B's report
        jobs = wait_until(
            lambda: (
                len(j := reported_jobs(engine, "node-b")) == 2
                and all(x["attempts"] >= 1 for x in j)
                and j
            ),
            15,
        )
        assert jobs, reported_jobs(engine, "node-b")
        by_id = {r["id"]: r for r in queue_view.rows(b_spool)}
        assert set(by_id) == {j["id"] for j in jobs}
        sender = {r["from"]: i for i, r in by_id.items()}
        doomed, retried = sender["del@sender.test"], sender["retry@sender.test"]
        assert wait_until(lambda: answers(url + "/login"), 20)
        bearer = {"Authorization": f"Bearer {api_token(url, 'olga')}"}

        # delete over A's API: 202 and a request id; B applies it
        asked_at = time.monotonic()
        asked = httpx.post(
            url + "/api/queue/control", json={"op": "delete", "job": doomed}, headers=bearer
        )
        assert asked.status_code == 202, asked.text
        answer = asked.json()
        assert answer["node"] == "node-b" and answer["messages"] == ["requested on node node-b"]
        status_url = f"{url}/api/queue/requests/{answer['request']}"
        done = wait_until(
            lambda: (s := httpx.get(status_url, headers=bearer).json())["state"] == "done" and s,
            PICKUP,
        )
        pickup = time.monotonic() - asked_at
        assert done and done["ok"] is True and doomed in done["message"], done
        assert [r["id"] for r in queue_view.rows(b_spool)] == [retried]

        # an unknown job: 404, no request
        unknown = httpx.post(
            url + "/api/queue/control", json={"op": "delete", "job": "nope"}, headers=bearer
        )
        assert unknown.status_code == 404 and "error" in unknown.json()

        # B's next hop comes up; retry now on A's page: "requested on node node-b"
        with SmtpSink(port=b_hop) as b_sink:
            olga = Browser(url)
            olga.login("olga")
            page = olga.post("/queue/control", {"op": "flush", "job": retried, "node": "node-b"})
            assert page.status_code == 200
            assert "requested on node node-b" in page.text, page.text
            olga.close()
            (copy,) = b_sink.wait_for(1, 10)
            assert b"to be retried" in copy.data
            assert wait_until(lambda: queue_view.rows(b_spool) == [], PICKUP)
        assert not [m for m in sink.messages if b"to be deleted" in m.data]
        logged = [
            (r["action"], r["object_id"])
            for r in audit.entries(engine, limit=10)
            if r["actor"] == "olga"
        ]
        assert logged[:2] == [("queue.flush", retried), ("queue.delete", doomed)]
        print(f"a delete asked on node A was done on node B after {pickup:.2f}s")
    finally:
        engine.dispose()
        for node in (a, b):
            node.stop()
