"""/metrics scraped over HTTP as Prometheus would, after real mail went through."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, insert

from gateway.store import ledger
from tests.support.gateway import GatewayProcess, write_config
from tests.support.mail import message
from tests.support.smtp_sink import free_port
from tests.support.wait import wait_until


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample as (name, sorted labels) -> value."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        body = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def wait_for(predicate, timeout: float = 30.0):
    return wait_until(predicate, timeout, 0.2)


def send(port: int, rcpts: list[str], data: bytes) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.sender.test")
        client.mail("alice@sender.test")
        accepted = [r for r in rcpts if client.rcpt(r)[0] == 250]
        return client.data(data)[0] if accepted else 550


@pytest.mark.slow
def test_two_processes_one_endpoint_counts_add_up(tmp_path, sink, dns_server):
    config = write_config(
        tmp_path,
        sink.address,
        {
            "smtp": {"processes": 2},
            "metrics": {"listen": "127.0.0.1:0"},
            "log": {"format": "json"},
            "policy": {"symbols": {"HEADER_MISSING_FROM": 20.0}},
            "dns": {"nameservers": [dns_server.nameserver]},
            "pipeline": {"disable": ["classifier"]},
        },
    )
    gateway = GatewayProcess(config).start(timeout=60)
    try:
        assert gateway.metrics_url and gateway.metrics_url.endswith("/metrics")
        sent = 30
        for i in range(sent):  # one connection each: the kernel spreads them over both
            assert send(gateway.port, ["bob@example.test"], message(f"m{i}")) == 250
        no_from = b"To: bob@example.test\r\nSubject: x\r\n\r\nbuy\r\n"
        assert send(gateway.port, ["bob@example.test"], no_from) == 550
        assert send(gateway.port, ["carol@elsewhere.test"], message()) == 550
        sink.wait_for(sent, timeout=60)

        def settled():
            s = scrape(gateway.metrics_url)
            done = value(s, "mailwarden_delivery_delay_seconds_count") == sent
            return done and value(s, "mailwarden_queue_jobs") == 0 and s

        samples = wait_for(settled)
        assert samples, scrape(gateway.metrics_url)
        workers = {
            record["worker"]
            for line in gateway.log.read_text().splitlines()
            if line.startswith("{") and (record := json.loads(line)).get("event") == "verdict"
        }
    finally:
        gateway.stop()
    assert workers == {0, 1}  # both processes took mail, and one endpoint counted it all

    assert value(samples, "mailwarden_messages_total", outcome="accepted") == sent
    assert value(samples, "mailwarden_messages_total", outcome="rejected") == 1
    accepted = value(samples, "mailwarden_recipients_total", domain="example.test", action="accept")
    assert accepted == sent
    rejected = value(samples, "mailwarden_recipients_total", domain="example.test", action="reject")
    assert rejected == 1
    delivered = value(samples, "mailwarden_deliveries_total", kind="message", result="delivered")
    assert delivered == sent
    assert value(samples, "mailwarden_refusals_total", stage="rcpt", source="relay") == 1
    assert value(samples, "mailwarden_filter_seconds_count", filter="total") == sent + 1
    assert value(samples, "mailwarden_filter_seconds_count", filter="auth") == sent + 1
    # every delivery on loopback took well under a minute
    assert value(samples, "mailwarden_delivery_delay_seconds_bucket", le="60.0") == sent
    assert value(samples, "mailwarden_queue_oldest_age_seconds") == 0
    assert value(samples, "mailwarden_component_up", component="database") == 1
    assert value(samples, "mailwarden_component_up", component="next_hop") == 1


def test_health_signatures_and_feedback_at_scrape_time(tmp_path, dns_server, clamd, redis_target):
    dead_hop = f"127.0.0.1:{free_port()}"  # nothing listens there
    config = write_config(
        tmp_path,
        dead_hop,
        {
            "metrics": {"listen": "127.0.0.1:0"},
            "dns": {"nameservers": [dns_server.nameserver]},
            "clamav": {"socket": str(clamd.socket)},
            "redis": {"url": redis_target.url, "prefix": redis_target.prefix},
            "pipeline": {"disable": ["classifier"]},
        },
    )
    gateway = GatewayProcess(config).start(timeout=60)
    try:
        assert send(gateway.port, ["bob@example.test"], message()) == 250
        engine = create_engine(gateway.settings.store.url)
        with engine.begin() as conn:
            (queue_id,) = conn.execute(ledger.messages.select()).first()[:1]
            conn.execute(
                insert(ledger.feedback),
                [
                    {
                        "message_id": queue_id,
                        "rcpt": "bob@example.test",
                        "kind": ledger.MISSED_SPAM,
                        "source": "user",
                        "created_at": datetime.now(UTC),
                    }
                ],
            )
        engine.dispose()
        samples = wait_for(
            lambda: (
                (s := scrape(gateway.metrics_url)) and value(s, "mailwarden_queue_jobs") == 1 and s
            )
        )
    finally:
        gateway.stop()
    assert value(samples, "mailwarden_component_up", component="clamd") == 1
    assert value(samples, "mailwarden_component_up", component="redis") == 1
    assert value(samples, "mailwarden_component_up", component="database") == 1
    assert value(samples, "mailwarden_component_up", component="next_hop") == 0
    info = [k for k in samples if k[0] == "mailwarden_clamav_signatures_info"]
    assert info and dict(info[0][1])["engine"][0].isdigit()
    assert value(samples, "mailwarden_feedback_total", kind="missed_spam", source="user") == 1
    # the mail waits for the dead next hop: the queue says so
    assert value(samples, "mailwarden_queue_oldest_age_seconds") > 0
    deferred = value(samples, "mailwarden_deliveries_total", kind="message", result="deferred")
    assert deferred and deferred >= 1
