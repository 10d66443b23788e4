"""A running gateway records heartbeats, next-hop reachability and its signatures."""

from __future__ import annotations

import time

from sqlalchemy import select

from gateway.store import availability
from tests.support.smtp_sink import free_port


def _poll(engine, table, count: int, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.id)).all()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_beats_say_the_next_hop_answered_and_record_the_signatures(make_gateway, clamd):
    gw = make_gateway(
        report={"heartbeat_interval": 0.2},
        clamav={"socket": str(clamd.socket), "timeout": 10.0},
    )
    engine = gw.gateway.db.engine
    beats = _poll(engine, availability.heartbeats, 3)
    assert len(beats) >= 3
    assert all(b.accepting and b.next_hop_ok for b in beats)
    assert {b.node for b in beats} == {gw.gateway.node}
    [version] = _poll(engine, availability.signature_versions, 1)
    assert version.version.startswith("ClamAV ") and version.node == gw.gateway.node
    assert version.last_seen >= version.first_seen


def test_an_unreachable_next_hop_is_recorded_beside_the_beat(tmp_path, dns_server):
    from tests.support.gateway import InProcessGateway, write_config

    closed = f"127.0.0.1:{free_port()}"  # nothing listens here
    extra = {
        "report": {"heartbeat_interval": 0.2, "probe_timeout": 1.0},
        "dns": {"nameservers": [dns_server.nameserver], "timeout": 1.0},
    }
    gw = InProcessGateway(write_config(tmp_path, closed, extra)).start()
    try:
        beats = _poll(gw.gateway.db.engine, availability.heartbeats, 2)
    finally:
        gw.stop()
    assert len(beats) >= 2 and all(b.next_hop_ok is False for b in beats)
