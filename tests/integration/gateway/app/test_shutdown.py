"""SIGTERM under load: `serve` stops accepting, finishes, and exits 0 within its
deadline, and every mail it acknowledged is delivered (now or from the spool).

The heartbeat beats (and probes the next hop) all the time here and delivery is
busy: on Python 3.11 a cancel landing as a wait_for completed was swallowed, and
`serve` never left Gateway.stop() (gateway/tasks.py)."""

from __future__ import annotations

import signal
import smtplib
import threading
import time

from tests.support.gateway import GatewayProcess, write_config
from tests.support.mail import message


def test_sigterm_under_load_exits_in_time_and_loses_nothing(tmp_path, sink, dns_server):
    extra = {
        "dns": {"nameservers": [dns_server.nameserver]},
        "report": {"heartbeat_interval": 0.02, "probe_timeout": 1.0},
        "smtp": {"shutdown_grace": 3.0},
    }
    config = write_config(tmp_path, sink.address, extra)
    gateway = GatewayProcess(config).start()
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            subject = f"load-{n}-{i}"
            try:
                with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as smtp:
                    smtp.sendmail("a@sender.test", ["bob@example.test"], message(subject))
            except (OSError, smtplib.SMTPException):
                continue
            with lock:
                acknowledged.append(subject)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    started = time.monotonic()
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(3.0 + 10) == 0, gateway.log.read_text()[-3000:]
    took = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join(15)
    assert acknowledged and took < 3.0 + 10
    assert "does not end" not in gateway.log.read_text()

    def delivered() -> set[str]:
        found = set()
        for mail in list(sink.messages):
            for line in mail.data.split(b"\r\n"):
                if line.startswith(b"Subject: "):
                    found.add(line[9:].decode())
        return found

    if set(acknowledged) - delivered():  # the rest waits in the spool: restart on it
        gateway = GatewayProcess(config).start()
        try:
            deadline = time.monotonic() + 20
            while set(acknowledged) - delivered() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            gateway.stop()
    assert set(acknowledged) <= delivered()
