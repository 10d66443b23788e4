"""An operator on node A's console acts on jobs in node B's spool (two `mailwarden
serve` processes sharing PostgreSQL and Redis): B's next hop is down, so B holds two
deferred jobs; A's API answers 202 with a request id for each action, B picks the
request up at once (A's Redis notice names B; B's own poll of the table is set to
5 minutes here, so only the notice can be in time), applies it to its own spool (one
job deleted, the other retried once its next hop is up and delivered) and writes the
outcome back. A job on no node: 404. Audited on A as a local action is. With Redis
down, B's poll of the table ([delivery] request_refresh) still finds the request."""

from __future__ import annotations

import contextlib
import smtplib
import time
from types import SimpleNamespace

import httpx

from gateway.config import parse_host_port
from gateway.store import audit, node_status, queue_view, users
from gateway.store.db import make_engine
from tests.support.cluster import answers, node_configs, start_nodes
from tests.support.console import PASSWORD, Browser, api_token
from tests.support.mail import message
from tests.support.smtp_sink import SmtpSink, free_port
from tests.support.wait import wait_until

PICKUP = 5.0  # "at once": a Redis notice, and the delivery scheduler woken by it


def reported_jobs(engine, node: str) -> list[dict]:
    rows = {r["node"]: r for r in node_status.all_nodes(engine)}
    return (rows.get(node) or {}).get("jobs") or []


@contextlib.contextmanager
def node_b_holding(tmp_path, sink, dns_server, postgres_url, redis, refresh, senders):
    """Nodes A (console) and B (next hop down, one deferred job per sender, as B's
    report lists them); yields (B, engine, console url, operator's bearer header)."""
    web_port = free_port()
    secret = tmp_path / "web.key"
    secret.write_text("test-signing-key-" + "x" * 32)
    configs = node_configs(
        tmp_path,
        {"node-a": sink.address, "node-b": f"127.0.0.1:{free_port()}"},
        dns_server,
        postgres_url,
        redis,
        grace=2.0,
        extra={
            "report": {"heartbeat_interval": 0.5, "probe_timeout": 1.0},
            "delivery": {"request_refresh": refresh},
        },
        console=("node-a", web_port, secret),
    )
    a, b = start_nodes(*configs.values())
    engine = make_engine(postgres_url)
    url = f"http://127.0.0.1:{web_port}"
    try:
        users.add(engine, "olga", "operator", (), PASSWORD)
        for sender, subject in senders:
            with smtplib.SMTP("127.0.0.1", b.port, timeout=10) as client:
                client.sendmail(sender, ["bob@example.test"], message(subject))
        # deferred on B (its next hop refuses) and in B's report
        jobs = wait_until(
            lambda: (
                len(j := reported_jobs(engine, "node-b")) == len(senders)
                and all(x["attempts"] >= 1 for x in j)
                and j
            ),
            15,
        )
        assert jobs, reported_jobs(engine, "node-b")
        by_id = {r["id"]: r for r in queue_view.rows(b.settings.spool.path)}
        assert set(by_id) == {j["id"] for j in jobs}
        assert wait_until(lambda: answers(url + "/login"), 20)
        yield b, engine, url, {"Authorization": f"Bearer {api_token(url, 'olga')}"}
    finally:
        engine.dispose()
        for node in (a, b):
            node.stop()


def delete_on_a(url: str, bearer: dict, job: str, within: float) -> tuple[dict, float]:
    """Delete `job` over A's API: 202 and a request for node B; its answer once done,
    and how long that took."""
    asked_at = time.monotonic()
    asked = httpx.post(
        url + "/api/queue/control", json={"op": "delete", "job": job}, headers=bearer
    )
    assert asked.status_code == 202, asked.text
    answer = asked.json()
    assert answer["node"] == "node-b" and answer["messages"] == ["requested on node node-b"]
    status_url = f"{url}/api/queue/requests/{answer['request']}"
    done = wait_until(
        lambda: (s := httpx.get(status_url, headers=bearer).json())["state"] == "done" and s,
        within,
    )
    return done, time.monotonic() - asked_at


def test_an_operator_on_node_a_deletes_and_retries_jobs_of_node_b(
    tmp_path, sink, dns_server, postgres_url, redis_target
):
    senders = [("del@sender.test", "to be deleted"), ("retry@sender.test", "to be retried")]
    cluster = node_b_holding(tmp_path, sink, dns_server, postgres_url, redis_target, 300.0, senders)
    with cluster as (b, engine, url, bearer):
        b_spool = b.settings.spool.path
        sender = {r["from"]: r["id"] for r in queue_view.rows(b_spool)}
        doomed, retried = sender["del@sender.test"], sender["retry@sender.test"]

        # delete over A's API: 202 and a request id; B applies it at the notice
        done, pickup = delete_on_a(url, bearer, doomed, PICKUP)
        assert done["ok"] is True and doomed in done["message"], done
        assert [r["id"] for r in queue_view.rows(b_spool)] == [retried]

        # an unknown job: 404, no request
        unknown = httpx.post(
            url + "/api/queue/control", json={"op": "delete", "job": "nope"}, headers=bearer
        )
        assert unknown.status_code == 404 and "error" in unknown.json()

        # B's next hop comes up; retry now on A's page: "requested on node node-b"
        _, b_hop = parse_host_port(b.settings.delivery.next_hop)
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


def test_without_redis_node_b_finds_the_request_by_its_poll(
    tmp_path, sink, dns_server, postgres_url, redis_target
):
    down = SimpleNamespace(url=f"redis://127.0.0.1:{free_port()}/0", prefix=redis_target.prefix)
    senders = [("del@sender.test", "to be deleted")]
    cluster = node_b_holding(tmp_path, sink, dns_server, postgres_url, down, 1.0, senders)
    with cluster as (b, _, url, bearer):
        (doomed,) = [r["id"] for r in queue_view.rows(b.settings.spool.path)]
        done, pickup = delete_on_a(url, bearer, doomed, 10.0)
        assert done["ok"] is True and doomed in done["message"], done
        assert queue_view.rows(b.settings.spool.path) == []
        print(f"without Redis, a delete asked on node A was done on node B after {pickup:.2f}s")
