"""A running gateway picks up rules saved in the database within seconds, and keeps
the last good version when a new one does not load on it."""

from __future__ import annotations

import smtplib
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from gateway.pipeline.rules_db import checker
from gateway.store import rules_store
from gateway.store.db import make_engine
from tests.support.mail import message
from tests.support.wait import wait_until

REJECT = (
    "domain: example.test\n"
    "rules:\n"
    "  - name: no-pills\n"
    "    when: {subject: {contains: pills}}\n"
    "    then: {action: reject, text: no pills here}\n"
)


def send(port: int, subject: str) -> str:
    """'ok' or the refusal's text."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        try:
            client.sendmail("a@sender.test", ["bob@example.test"], message(subject=subject))
        except smtplib.SMTPDataError as exc:
            return f"{exc.smtp_code} {exc.smtp_error.decode()}"
    return "ok"


def until(predicate, timeout: float = 10.0):
    return wait_until(predicate, timeout, 0.1)


@pytest.fixture
def node(make_gateway):
    gw = make_gateway(rules={"db_refresh": 0.3})
    engine = make_engine(gw.settings.store.url)
    yield gw, engine
    engine.dispose()


def test_a_saved_version_applies_within_seconds_and_a_broken_one_keeps_the_last_good(node):
    gw, engine = node
    check = checker(gw.settings)
    assert send(gw.port, "cheap pills") == "ok"
    rules_store.save(engine, "example.test", REJECT, "alice", check=check)
    started = time.monotonic()
    refused = until(lambda: (r := send(gw.port, "cheap pills")) != "ok" and r)
    assert refused and refused.startswith("550") and "no pills here" in refused
    assert time.monotonic() - started < 5

    # a version this node cannot compile (written past the checker, as a newer node's
    # symbol would be): logged, the previous version stays in force
    with engine.begin() as conn:
        conn.execute(
            insert(rules_store.rule_versions).values(
                domain="example.test",
                version=2,
                text="domain: example.test\nsymbols: {NO_SUCH_SYMBOL: 3}\n",
                created_at=datetime.now(UTC),
                created_by="mallory",
                comment="",
            )
        )
    follower = gw.gateway.rules_db
    assert until(lambda: follower.refused.get("example.test"))
    assert send(gw.port, "cheap pills").startswith("550")

    rules_store.rollback(engine, "example.test", 1, "alice", check=check)
    rules_store.save(engine, "example.test", "domain: example.test\n", "alice", check=check)
    assert until(lambda: send(gw.port, "cheap pills") == "ok")


def test_with_redis_unreachable_rules_still_apply_by_polling_and_the_loss_is_logged_once(
    make_gateway, caplog
):
    from tests.support.smtp_sink import free_port

    caplog.set_level("WARNING", logger="mailwarden.rules")
    gw = make_gateway(
        rules={"db_refresh": 0.3}, redis={"url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    engine = make_engine(gw.settings.store.url)
    try:
        rules_store.save(engine, "example.test", REJECT, "alice", check=checker(gw.settings))
        refused = until(lambda: (r := send(gw.port, "cheap pills")) != "ok" and r)
        assert refused and refused.startswith("550")
        time.sleep(1.5)  # the subscription has been retried since
        lost = [
            r
            for r in caplog.records
            if r.name == "mailwarden.rules" and "Redis notifications lost" in r.getMessage()
        ]
        assert len(lost) == 1
    finally:
        engine.dispose()
