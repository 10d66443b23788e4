"""SIGHUP: `serve` reloads rules, thresholds and logging without dropping sessions."""

from __future__ import annotations

import json
import signal
import time

from tests.support.gateway import GatewayProcess, write_config
from tests.support.mail import message, open_data

PILLS = (
    "domain: example.test\n"
    "rules:\n"
    "  - name: no-pills\n"
    "    when: {subject: {contains: pills}}\n"
    "    then: {action: reject, text: no pills after the reload}\n"
)


def wait_for_line(path, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}: {path.read_text()[-2000:]}")


def test_an_open_session_survives_sighup_and_its_mail_meets_the_new_rules(
    tmp_path, sink, dns_server
):
    rules_dir = tmp_path / "rules.d"
    rules_dir.mkdir()
    (rules_dir / "example.test.yaml").write_text("domain: example.test\n")
    extra = {
        "dns": {"nameservers": [dns_server.nameserver]},
        "rules": {"dir": str(rules_dir), "reload_interval": 3600.0},  # only SIGHUP
    }
    config = write_config(tmp_path, sink.address, extra)
    gateway = GatewayProcess(config).start()
    try:
        client = open_data(gateway.port, rcpt="bob@example.test")
        (rules_dir / "example.test.yaml").write_text(PILLS)
        config.write_text(config.read_text() + '\n[log]\nformat = "json"\n')
        gateway.signal(signal.SIGHUP)
        wait_for_line(gateway.log, "reloaded (SIGHUP)")

        client.send(message(subject="cheap pills") + b".\r\n")
        reply = client.reply()
        assert reply.startswith("550") and "no pills after the reload" in reply
        assert client.cmd("QUIT").startswith("221")
        client.close()

        def after_reload() -> list[str]:
            text = gateway.log.read_text().split("reloaded (SIGHUP)", 1)[1]
            return [line for line in text.splitlines()[1:] if line.strip()]

        deadline = time.monotonic() + 10  # the verdict's line is written after the reply
        while not after_reload() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert after_reload() and all(json.loads(line) for line in after_reload())

        # a broken file refused at SIGHUP: the rules in force stay
        config.write_text(config.read_text() + "\n[smtp\n")
        gateway.signal(signal.SIGHUP)
        wait_for_line(gateway.log, "reload (SIGHUP) refused, nothing changed")
        client = open_data(gateway.port)
        client.send(message(subject="more pills") + b".\r\n")
        assert client.reply().startswith("550")
        client.close()
    finally:
        gateway.stop()
    assert gateway.proc is not None and gateway.proc.returncode == 0
