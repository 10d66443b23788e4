"""The gateway as a process: SIGKILL during a burst, SIGTERM with sessions open."""

from __future__ import annotations

import signal
import smtplib
import socket
import threading
import time

import pytest

from tests.support.gateway import GatewayProcess, write_config
from tests.support.mail import RawSmtp, message


def _burst_client(port: int, n: int, stop: threading.Event, outcomes: dict, lock) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        tag = f"burst-{n}-{i}"
        if i % 4 == 0:  # refused at DATA by policy (no From header scores over reject)
            data = f"To: bob@example.test\r\nSubject: {tag}\r\n\r\nno sender\r\n".encode()
        else:
            data = message(subject=tag)
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo("burst.test")
                client.mail("alice@sender.test")
                client.rcpt("bob@example.test")
                code, _ = client.data(data)
        except (OSError, smtplib.SMTPException):
            time.sleep(0.01)  # in flight at the kill, or the gateway is down
            continue
        with lock:
            outcomes[tag] = code


@pytest.mark.parametrize("processes", [1, 2])
def test_sigkill_during_burst_loses_nothing_acknowledged(tmp_path, sink, dns_server, processes):
    config = write_config(
        tmp_path,
        sink.address,
        {
            "smtp": {"processes": processes},
            "policy": {"symbols": {"HEADER_MISSING_FROM": 20.0}},
            "dns": {"nameservers": [dns_server.nameserver]},
            "pipeline": {"disable": ["classifier"]},
        },
    )
    gateway = GatewayProcess(config).start()
    outcomes: dict[str, int] = {}
    lock, stop = threading.Lock(), threading.Event()
    clients = [
        threading.Thread(target=_burst_client, args=(gateway.port, n, stop, outcomes, lock))
        for n in range(8)
    ]
    for c in clients:
        c.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # kill mid-burst, once enough got through
        with lock:
            if sum(code == 250 for code in outcomes.values()) >= 40:
                break
        time.sleep(0.01)
    gateway.kill()
    stop.set()
    for c in clients:
        c.join(15)
    acknowledged = {tag for tag, code in outcomes.items() if code == 250}
    refused = {tag for tag, code in outcomes.items() if code >= 400}
    assert len(acknowledged) > 20 and refused, outcomes

    gateway = GatewayProcess(config).start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            delivered = {_subject(m.data) for m in list(sink.messages)}
            if acknowledged <= delivered:
                break
            time.sleep(0.1)
        missing = acknowledged - delivered
        assert not missing, f"{len(missing)} acknowledged message(s) never delivered"
        assert not (refused & delivered), "a refused message was delivered"
    finally:
        gateway.stop()


def _subject(data: bytes) -> str:
    for line in data.split(b"\r\n"):
        if line.startswith(b"Subject: "):
            return line[9:].decode()
    return ""


def test_sigterm_stops_accepting_and_lets_sessions_finish(tmp_path, sink, dns_server):
    config = write_config(
        tmp_path,
        sink.address,
        {"smtp": {"shutdown_grace": 10.0}, "dns": {"nameservers": [dns_server.nameserver]}},
    )
    gateway = GatewayProcess(config).start()
    client = RawSmtp(gateway.port)
    assert client.reply().startswith("220")
    client.cmd("EHLO client.test")
    client.cmd("MAIL FROM:<alice@sender.test>")
    client.cmd("RCPT TO:<bob@example.test>")
    assert client.cmd("DATA").startswith("354")

    gateway.signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", gateway.port), timeout=2)

    client.send(message(subject="finished during shutdown") + b".\r\n")
    assert client.reply().startswith("250")
    assert client.cmd("QUIT").startswith("221")
    client.close()
    assert gateway.wait(20) == 0

    if not sink.messages:  # acknowledged but not yet delivered: it waits in the spool
        gateway = GatewayProcess(config).start()
        try:
            sink.wait_for(1)
        finally:
            gateway.stop()
    assert b"Subject: finished during shutdown" in sink.messages[0].data


def test_a_change_in_process_count_adopts_every_waiting_job(tmp_path, sink, dns_server):
    sink.stop()  # the next hop is down: everything waits in the spool
    extra = {"dns": {"nameservers": [dns_server.nameserver]}, "smtp": {"processes": 2}}
    config = write_config(tmp_path, sink.address, extra)
    gateway = GatewayProcess(config).start()
    for i in range(12):  # new connections: the kernel spreads them over both workers
        with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as client:
            client.sendmail("alice@sender.test", ["bob@example.test"], message(subject=f"m{i}"))
    gateway.stop()
    spooled = {p.parent.parent.name for p in (tmp_path / "spool").glob("w*/queue/*.job")}
    assert spooled == {"w0", "w1"}  # both workers took mail

    extra["smtp"] = {"processes": 1}
    write_config(tmp_path, sink.address, extra)
    sink.start()
    gateway = GatewayProcess(config).start()
    try:
        got = sink.wait_for(12, timeout=30)
    finally:
        gateway.stop()
    assert sorted(_subject(m.data) for m in got) == sorted(f"m{i}" for i in range(12))
