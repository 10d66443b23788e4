"""Fixtures shared by all tests: real servers on loopback, started per test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from tests.support.dnsserver import LoopbackDns
from tests.support.gateway import InProcessGateway, write_config
from tests.support.services import drop_postgres_schema, postgres_schema_url, require_redis
from tests.support.smtp_sink import SmtpSink


@pytest.fixture
def dns_server():
    """A real DNS server on 127.0.0.1 (UDP and TCP); add records to `.zone`."""
    with LoopbackDns() as server:
        yield server


@pytest.fixture
def sink():
    """A real SMTP server on loopback standing in for the protected mail server."""
    with SmtpSink() as server:
        yield server


@pytest.fixture
def make_gateway(tmp_path, sink, dns_server):
    """Start an in-process gateway relaying to `sink`, resolving through `dns_server`
    (hermetic: no query leaves the machine); extra config sections as kwargs."""
    started: list[InProcessGateway] = []

    def start(**extra) -> InProcessGateway:
        directory = tmp_path / f"gw{len(started)}"
        directory.mkdir()
        extra.setdefault("dns", {"nameservers": [dns_server.nameserver], "timeout": 1.0})
        gw = InProcessGateway(write_config(directory, sink.address, extra)).start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture
def gateway(make_gateway):
    return make_gateway()


@pytest.fixture
def postgres_url():
    """A URL of the real PostgreSQL with a fresh schema, dropped afterwards."""
    url, schema = postgres_schema_url()
    yield url
    drop_postgres_schema(schema)


@dataclass(frozen=True)
class RedisTarget:
    url: str
    prefix: str  # every key a test writes starts with it


@pytest.fixture
def redis_target():
    """The real Redis on 127.0.0.1:6379 with a key prefix of this test's own; its keys
    are deleted afterwards."""
    import redis

    url = require_redis()
    target = RedisTarget(url, f"mwtest:{uuid.uuid4().hex[:12]}:")
    yield target
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=target.prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _start_clamd(**kwargs):
    from tests.support.clamd import ClamdServer, clamd_available

    if not clamd_available():
        pytest.fail("clamd is not installed: run `make system-deps` (Debian clamav-daemon)")
    return ClamdServer(**kwargs).start()


@pytest.fixture(scope="session")
def clamd():
    """A real clamd (rules/clamav signatures, StreamMaxLength 64M), shared by the session."""
    server = _start_clamd(stream_max_length="64M")
    yield server
    server.close()


@pytest.fixture(scope="session")
def clamd_small():
    """A real clamd whose StreamMaxLength is only 1M (to test parts above the limit)."""
    server = _start_clamd(stream_max_length="1M")
    yield server
    server.close()


@pytest.fixture
def clamd_private():
    """A real clamd for one test only (tests that stop or freeze it)."""
    server = _start_clamd()
    yield server
    server.close()


@pytest.fixture
def postfix():
    """Debian's Postfix on a loopback port, delivering to a Maildir (tests/support/postfix)."""
    from tests.support.postfix import PostfixServer, postfix_available

    if not postfix_available():
        pytest.fail("Postfix is not installed: run `make system-deps` (Debian postfix)")
    with PostfixServer() as server:
        yield server
