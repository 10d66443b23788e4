"""A running gateway holds the antivirus policies in memory: a change made through the
actions (the CLI, the console) on one node applies on every node within a second by
the Redis notice, and within `[clamav] policy_refresh` by the poll when Redis is
down. Real SMTP, clamd, Redis, and SQLite or PostgreSQL shared by two gateways."""

from __future__ import annotations

import email

import httpx
import pytest

from gateway.actions import policy as policy_actions
from gateway.actions.common import Actor
from gateway.cli import main as cli
from gateway.store import av_policy_live
from tests.integration.gateway.smtp.test_antivirus_smtp import (
    EICAR_NAME,
    config_path,
    infected_mail,
    send,
)
from tests.support.console import Browser, api_token, start_console, stop_console
from tests.support.smtp_sink import free_port
from tests.support.wait import wait_until

NOTICE = 2.0  # seconds: only the Redis notice can be this fast (the poll is at 60 s)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_url")


def status_of_next(gw, sink, ident: str, rcpt: str = "bob@example.test") -> str:
    """X-Virus-Status of an EICAR message sent now through `gw` as the sink got it."""
    before = len(sink.messages)
    code, reply = send(gw.port, [rcpt], infected_mail(ident))
    assert code == 250, reply
    got = sink.wait_for(before + 1)[before]
    return email.message_from_bytes(got.data)["X-Virus-Status"]


def mode_held(gw, target: str) -> str | None:
    rows = gw.gateway.av_policies.rows or {}
    return (rows.get(target) or {}).get("mode")


def test_a_change_on_one_node_applies_on_the_other_by_the_redis_notice(
    make_gateway, clamd, sink, redis_target, store_url
):
    sections = {
        "clamav": {"socket": str(clamd.socket), "timeout": 10.0, "policy_refresh": 60.0},
        "redis": {"url": redis_target.url, "prefix": redis_target.prefix},
        "store": {"url": store_url},
    }
    one, two = make_gateway(**sections), make_gateway(**sections)
    assert status_of_next(two, sink, "p1") == f"Cleaned ({EICAR_NAME})"

    set_args = ["policy", "set", "bob@example.test", "--mode", "detect"]
    assert cli([*set_args, "--config", config_path(one)]) == 0
    wait_until(lambda: mode_held(two, "bob@example.test") == "detect", timeout=NOTICE)
    assert status_of_next(two, sink, "p2") == f"Infected ({EICAR_NAME})"
    assert status_of_next(one, sink, "p3") == f"Infected ({EICAR_NAME})"

    assert cli(["policy", "clear", "bob@example.test", "--config", config_path(one)]) == 0
    wait_until(lambda: mode_held(two, "bob@example.test") is None, timeout=NOTICE)
    assert status_of_next(two, sink, "p4") == f"Cleaned ({EICAR_NAME})"


def test_without_redis_the_poll_picks_the_change_up(make_gateway, clamd, sink, store_url):
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    gw = make_gateway(
        clamav={"socket": str(clamd.socket), "timeout": 10.0, "policy_refresh": 0.5},
        redis={"url": down, "prefix": "mwtest:down:"},
        store={"url": store_url},
    )
    assert status_of_next(gw, sink, "d1") == f"Cleaned ({EICAR_NAME})"
    notices: list[str] = []

    def changed() -> None:  # what the CLI and the console pass: fails quietly, logged
        notices.append("sent")
        av_policy_live.notify_sync(down, "mwtest:down:")

    policy_actions.put(
        gw.gateway.db.engine, Actor.cli("tester"), "@example.test", mode="detect", changed=changed
    )
    assert notices == ["sent"]
    wait_until(lambda: mode_held(gw, "@example.test") == "detect", timeout=5.0)  # polls: 0.5 s
    assert status_of_next(gw, sink, "d2") == f"Infected ({EICAR_NAME})"


def test_the_console_announces_its_policy_changes(tmp_path, clamd, redis_target):
    console = start_console(
        tmp_path,
        sections={
            "clamav": {"socket": str(clamd.socket), "timeout": 10.0, "policy_refresh": 60.0},
            "redis": {"url": redis_target.url, "prefix": redis_target.prefix},
        },
    )
    try:
        gw = console.gateway
        bearer = {"Authorization": f"Bearer {api_token(console.url, 'ada')}"}
        put = httpx.put(
            f"{console.url}/api/domains/example.test/policies/bob",
            json={"mode": "detect"},
            headers=bearer,
        )
        assert put.status_code == 200, put.text
        wait_until(lambda: mode_held(gw, "bob@example.test") == "detect", timeout=NOTICE)
        assert status_of_next(gw, console.sink, "w1") == f"Infected ({EICAR_NAME})"

        admin = Browser(console.url)
        admin.login("ada")
        form = {"mailbox": "bob", "mode": "clean"}
        assert admin.post("/domains/example.test/policies", form).status_code == 303
        wait_until(lambda: mode_held(gw, "bob@example.test") == "clean", timeout=NOTICE)
        assert status_of_next(gw, console.sink, "w2") == f"Cleaned ({EICAR_NAME})"
    finally:
        stop_console(console)
