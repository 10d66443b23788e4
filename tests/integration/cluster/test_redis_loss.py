"""Losing Redis costs speed, never a verdict: a node whose Redis does not answer
judges and delivers mail, picks up list changes by polling the database, and says so
in its log (once) and in its metrics (mailwarden_component_up{component="redis"} 0)."""

from __future__ import annotations

import logging
import smtplib
import time

from gateway.cli import main as cli_main
from tests.integration.gateway.monitor.test_metrics import scrape, value
from tests.support.mail import message
from tests.support.smtp_sink import free_port


def _send(port: int, sender: str) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        try:
            client.sendmail(sender, ["bob@example.test"], message(sender=sender))
        except smtplib.SMTPRecipientsRefused as exc:
            return exc.recipients["bob@example.test"][0]
        except smtplib.SMTPSenderRefused as exc:
            return exc.smtp_code
    return 250


def test_a_node_without_redis_keeps_its_verdicts_and_says_so(make_gateway, sink, caplog):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    caplog.set_level(logging.WARNING)
    gw = make_gateway(
        redis={"url": dead},
        blocklist={"list_refresh": 0.5},
        metrics={"listen": "127.0.0.1:0"},
    )
    assert _send(gw.port, "alice@sender.test") == 250
    sink.wait_for(1)

    assert cli_main(["lists", "add", "block", "spammer@bad.test", "--by", "test",
                     "--config", str(gw.config)]) == 0  # fmt: skip
    deadline = time.monotonic() + 10
    while (code := _send(gw.port, "spammer@bad.test")) == 250 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert code == 550  # picked up by polling the database

    host, port = gw.gateway.metrics_address
    samples = scrape(f"http://{host}:{port}/metrics")
    assert value(samples, "mailwarden_component_up", component="redis") == 0
    assert value(samples, "mailwarden_component_up", component="database") == 1
    lost = [r.name for r in caplog.records if "Redis notifications lost" in r.getMessage()]
    assert lost.count("mailwarden.lists") == 1  # once, not once per poll
