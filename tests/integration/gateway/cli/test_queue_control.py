"""`mailwarden queue show|flush|hold|release|delete` against a running `mailwarden serve`."""

from __future__ import annotations

import json
import smtplib
import time

import pytest
from sqlalchemy import create_engine, text

from tests.integration.gateway.cli.operator_run import mailwarden
from tests.support.gateway import GatewayProcess, write_config
from tests.support.mail import message

SLOW_RETRY = {"retry_schedule": [3600.0], "poll_interval": 0.2}  # only a flush retries


@pytest.fixture
def deferring(tmp_path, sink, dns_server):
    """A running gateway whose next hop answers 451 for bob@ until told otherwise."""
    sink.rcpt_replies["bob@example.test"] = "451 4.3.0 try again later"
    config = write_config(
        tmp_path,
        sink.address,
        {"delivery": SLOW_RETRY, "dns": {"nameservers": [dns_server.nameserver]}},
    )
    gateway = GatewayProcess(config).start(timeout=120)
    yield gateway
    gateway.stop()


def _send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.sendmail("alice@sender.test", ["bob@example.test"], message(subject=subject))


def _queue(config) -> list[dict]:
    done = mailwarden("queue", "-c", str(config), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _deferred_job(config, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [j for j in _queue(config) if j["attempts"] >= 1]
        if jobs:
            return jobs[0]
        time.sleep(0.2)
    raise AssertionError(f"no deferred job: {_queue(config)}")


def test_hold_keeps_a_job_from_delivery_until_released(deferring, sink):
    config = deferring.config
    _send(deferring.port, "held one")
    job = _deferred_job(config)
    held = mailwarden("queue", "hold", job["id"], "-c", str(config), "--by", "carol")
    assert held.returncode == 0, held.stdout + held.stderr
    assert held.stdout.strip() == f"held {job['id']}"
    sink.rcpt_replies.clear()  # the next hop would take it now

    flushed = mailwarden("queue", "flush", "-c", str(config))
    assert flushed.returncode == 0, flushed.stderr
    time.sleep(2.0)  # ten scheduler rounds: a held job must still not go
    assert sink.messages == []
    (listed,) = _queue(config)
    assert listed["state"] == "held" and listed["held"]["by"] == "carol"

    released = mailwarden("queue", "release", job["id"], "-c", str(config))
    assert released.returncode == 0, released.stderr
    assert released.stdout.strip() == f"released {job['id']}"
    got = sink.wait_for(1, timeout=60)
    assert b"Subject: held one" in got[0].data


def test_flush_retries_a_deferred_job_now(deferring, sink):
    config = deferring.config
    _send(deferring.port, "flush me")
    job = _deferred_job(config)
    assert job["next_attempt_in"] > 600  # left alone it would wait an hour
    sink.rcpt_replies.clear()
    done = mailwarden("queue", "flush", job["id"], "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert sink.wait_for(1, timeout=60)[0].rcpts == ("bob@example.test",)


def test_show_and_delete_recorded_in_the_ledger_with_who(deferring, sink):
    config = deferring.config
    _send(deferring.port, "delete me")
    job = _deferred_job(config)

    shown = mailwarden("queue", "show", job["id"], "-c", str(config), "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["headers"]["Subject"] == "delete me"
    assert detail["recipients"][0]["rcpt"] == "bob@example.test"
    assert "451 4.3.0" in detail["recipients"][0]["last_error"]
    assert detail["state"] == "deferred"
    text_view = mailwarden("queue", "show", job["id"], "-c", str(config))
    assert "Subject:" in text_view.stdout and "RECIPIENT" in text_view.stdout

    deleted = mailwarden("queue", "delete", job["id"], "-c", str(config), "--by", "dave")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted {job['id']}"
    assert _queue(config) == []
    engine = create_engine(deferring.settings.store.url)
    with engine.connect() as conn:
        status, note = conn.execute(
            text("SELECT status, last_error FROM recipients WHERE message_id = :q"),
            {"q": job["queue_id"]},
        ).one()
    engine.dispose()
    assert status == "deleted" and "by dave" in note
    missing = mailwarden("queue", "show", job["id"], "-c", str(config))
    assert missing.returncode == 2 and "no such job" in missing.stderr


def test_a_hold_requested_while_stopped_applies_before_any_delivery(tmp_path, sink, dns_server):
    sink.rcpt_replies["bob@example.test"] = "451 4.3.0 try again later"
    config = write_config(
        tmp_path,
        sink.address,
        {"delivery": SLOW_RETRY, "dns": {"nameservers": [dns_server.nameserver]}},
    )
    gateway = GatewayProcess(config).start(timeout=120)
    try:
        _send(gateway.port, "while stopped")
        job = _deferred_job(config)
    finally:
        gateway.stop()
    sink.rcpt_replies.clear()
    asked = mailwarden("queue", "hold", job["id"], "-c", str(config), "--wait", "1")
    assert asked.returncode == 1
    assert "no running gateway answered" in asked.stdout
    gateway = GatewayProcess(config).start(timeout=120)
    try:
        deadline = time.monotonic() + 30
        while _queue(config)[0]["state"] != "held":
            assert time.monotonic() < deadline, _queue(config)
            time.sleep(0.2)
        flushed = mailwarden("queue", "flush", "-c", str(config))
        assert flushed.returncode == 0, flushed.stderr
        time.sleep(1.5)
        assert sink.messages == []  # recovered, but held: not sent at start nor on flush
    finally:
        gateway.stop()
