"""Fixtures shared by all tests: real servers on loopback, started per test."""

from __future__ import annotations

import pytest

from tests.support.dnsserver import LoopbackDns


@pytest.fixture
def dns_server():
    """A real DNS server on 127.0.0.1 (UDP and TCP); add records to `.zone`."""
    with LoopbackDns() as server:
        yield server
