"""Two `mailwarden serve` processes on one real PostgreSQL schema and one Redis, the
sink as next hop (issue 13): what is changed through one node applies on the other
within seconds, a mail held by one is released through the other, both write one
ledger, and a SIGKILLed node loses nothing it acknowledged while the other serves.

One test, its steps in order, so the two processes start once."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import threading
import time

from sqlalchemy import func, select

from gateway.store import ledger, quarantine
from gateway.store.db import make_engine
from tests.support.cluster import node_configs, start_nodes
from tests.support.gateway import REPO, GatewayProcess
from tests.support.mail import message
from tests.support.wait import wait_until

PICKUP = 5.0  # "within a few seconds"

RULES = (
    "domain: example.test\n"
    "rules:\n"
    "  - name: no-pills\n"
    "    when: {subject: {contains: pills}}\n"
    "    then: {action: reject, text: no pills on any node}\n"
    "  - name: hold\n"
    "    when: {subject: {contains: hold me}}\n"
    "    then: {action: quarantine}\n"
)


def cli(config, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def send(port: int, subject: str, sender: str = "alice@sender.test") -> str:
    """'ok', or the refusal."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail(sender, ["bob@example.test"], message(subject=subject))
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return f"{code} {text.decode()}"
    except smtplib.SMTPResponseException as exc:
        return f"{exc.smtp_code} {exc.smtp_error.decode()}"
    except (OSError, smtplib.SMTPException) as exc:  # the node was killed mid-session
        return f"failed: {exc}"
    return "ok"


def until(predicate, timeout: float = PICKUP):
    return wait_until(predicate, timeout, 0.05)


def subjects(sink) -> set[str]:
    found = set()
    for mail in list(sink.messages):
        for line in mail.data.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                found.add(line[9:].decode())
    return found


def test_two_nodes_share_rules_lists_quarantine_ledger_and_survive_a_kill(
    tmp_path, sink, dns_server, postgres_url, redis_target
):
    hops = {"node-a": sink.address, "node-b": sink.address}
    configs = list(node_configs(tmp_path, hops, dns_server, postgres_url, redis_target).values())
    a, b = start_nodes(*configs)
    engine = make_engine(postgres_url)
    try:
        # a list entry added through node A's configuration refuses mail at node B
        assert send(b.port, "before the block", sender="spammer@bad.test") == "ok"
        cli(a.config, "lists", "add", "block", "spammer@bad.test", "--by", "test")
        started = time.monotonic()
        refused = until(lambda: (r := send(b.port, "blocked?", "spammer@bad.test")) != "ok" and r)
        assert refused and refused.startswith("550"), refused
        list_pickup = time.monotonic() - started

        # a rule saved through node A applies on node B
        rules = tmp_path / "example.test.yaml"
        rules.write_text(RULES)
        cli(a.config, "rules", "import", "example.test", str(rules), "--by", "test")
        started = time.monotonic()
        refused = until(lambda: (r := send(b.port, "cheap pills")) != "ok" and r)
        assert refused and "no pills on any node" in refused, refused
        rule_pickup = time.monotonic() - started
        until(lambda: send(a.port, "cheap pills") != "ok")
        assert send(a.port, "hold me please") == "ok"  # quarantined by node A

        # SIGKILL node A in the middle of a burst of mail to it; node B keeps serving
        acknowledged: list[str] = []
        stop = threading.Event()

        def burst() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                if send(a.port, f"burst {i}") == "ok":
                    acknowledged.append(f"burst {i}")

        thread = threading.Thread(target=burst, daemon=True)
        thread.start()
        time.sleep(1.0)
        a.kill()
        stop.set()
        thread.join(15)
        assert acknowledged
        assert send(b.port, "while A is down") == "ok"

        # the mail node A held is released with node A down: node B delivers it
        with engine.connect() as conn:
            held = conn.execute(
                select(quarantine.quarantine.c.id).where(quarantine.quarantine.c.status == "held")
            ).all()
        assert len(held) == 1
        assert quarantine.request_release(engine, held[0].id, "staff")
        assert until(lambda: "hold me please" in subjects(sink), 15)

        # node A restarted on its spool delivers everything it acknowledged
        a = GatewayProcess(configs[0]).start()
        assert until(lambda: set(acknowledged) <= subjects(sink), 30), set(acknowledged) - subjects(
            sink
        )
        assert "while A is down" in subjects(sink)

        # one ledger: both nodes' mail
        with engine.connect() as conn:
            nodes = dict(
                conn.execute(
                    select(ledger.messages.c.node, func.count()).group_by(ledger.messages.c.node)
                ).all()
            )
        assert set(nodes) == {"node-a", "node-b"}
        assert nodes["node-a"] >= len(acknowledged) + 2
        print(f"list pickup {list_pickup:.2f}s, rule pickup {rule_pickup:.2f}s")
    finally:
        engine.dispose()
        for node in (a, b):
            node.stop()
