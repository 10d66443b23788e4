"""Fixtures shared by all tests: real servers on loopback, started per test."""

from __future__ import annotations

import pytest

from tests.support.dnsserver import LoopbackDns


@pytest.fixture
def dns_server():
    """A real DNS server on 127.0.0.1 (UDP and TCP); add records to `.zone`."""
    with LoopbackDns() as server:
        yield server


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
