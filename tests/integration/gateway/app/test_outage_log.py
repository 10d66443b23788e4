"""A failing clamd or next hop is logged once when it fails and once when it recovers."""

from __future__ import annotations

import smtplib
import time

import pytest

from tests.support.gateway import GatewayProcess, write_config
from tests.support.mail import message
from tests.support.wait import wait_until


def _send(port: int, subject: str) -> int:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.sendmail("alice@sender.test", ["bob@example.test"], message(subject=subject))
    except smtplib.SMTPDataError as exc:
        return exc.smtp_code
    return 250


def _lines(gateway: GatewayProcess, *words: str) -> list[str]:
    return [
        line for line in gateway.log.read_text().splitlines() if all(word in line for word in words)
    ]


def _wait_for(predicate, timeout: float = 60.0):
    return wait_until(predicate, timeout, 0.2)


@pytest.mark.slow
def test_clamd_down_and_back_is_two_warnings_not_one_per_message(
    tmp_path, sink, dns_server, clamd_private
):
    config = write_config(
        tmp_path,
        sink.address,
        {
            "clamav": {"address": clamd_private.address, "timeout": 1.0},
            "dns": {"nameservers": [dns_server.nameserver]},
        },
    )
    gateway = GatewayProcess(config).start(timeout=120)
    try:
        assert _send(gateway.port, "before") == 250
        clamd_private.pause()
        assert [_send(gateway.port, f"during {i}") for i in range(3)] == [451, 451, 451]
        clamd_private.resume()
        assert _send(gateway.port, "after") == 250
        target = clamd_private.address
        _wait_for(lambda: _lines(gateway, "clamd", target, "answers again"))
        failing = _lines(gateway, "WARNING", "clamd", target, "is failing")
        assert len(failing) == 1, gateway.log.read_text()
        assert "timed out" in failing[0]
        assert len(_lines(gateway, "WARNING", "clamd", target, "answers again")) == 1
    finally:
        gateway.stop()


@pytest.mark.slow
def test_next_hop_down_and_back_is_two_warnings(tmp_path, sink, dns_server):
    config = write_config(tmp_path, sink.address, {"dns": {"nameservers": [dns_server.nameserver]}})
    gateway = GatewayProcess(config).start(timeout=120)
    try:
        sink.stop()
        assert _send(gateway.port, "queued one") == 250
        assert _send(gateway.port, "queued two") == 250
        _wait_for(lambda: _lines(gateway, "next hop", sink.address, "is failing"))
        time.sleep(2.0)  # several retries (schedule 0.3, 0.5, 1 s) while it is down
        sink.start()
        sink.wait_for(2, timeout=60)
        _wait_for(lambda: _lines(gateway, "next hop", sink.address, "answers again"))
        failing = _lines(gateway, "WARNING", "next hop", sink.address, "is failing")
        assert len(failing) == 1, gateway.log.read_text()
        assert "Connect" in failing[0] or "refused" in failing[0].lower()
        assert len(_lines(gateway, "WARNING", "next hop", sink.address, "answers again")) == 1
    finally:
        gateway.stop()
