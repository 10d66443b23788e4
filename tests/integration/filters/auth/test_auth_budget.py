"""A slow sender's DNS costs at most the per-message budget, and gives temperror."""

from __future__ import annotations

import time

from tests.support.authrun import AuthHarness
from tests.support.mailauth import context, message, publish, rsa_key, sign


def test_slow_dns_gives_temperror_within_the_budget(dns_server):
    zone = dns_server.zone
    zone.add("example.test", "TXT", "v=spf1 include:slow.example.test -all")
    zone.add("slow.example.test", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    zone.slow("slow.example.test", 3.0)
    publish(zone, "rsa1", "example.test", rsa_key())
    zone.slow("rsa1._domainkey.example.test", 3.0)
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
    zone.slow("_dmarc.example.test", 3.0)
    auth = AuthHarness(dns_server.nameserver, timeout=0.4, budget=1.0)
    raw = sign(message(), "rsa1", "example.test", rsa_key())

    started = time.monotonic()
    run = auth.run(context(raw))
    elapsed = time.monotonic() - started

    assert elapsed < 1.0 + 0.5 + 0.3  # budget + grace + scheduling slack
    assert {"SPF_TEMPERROR", "DKIM_TEMPERROR", "DMARC_TEMPERROR"} <= run.names
    assert run.result.force is None
    assert "spf=temperror" in run.header and "dkim=temperror" in run.header


def test_many_slow_lookups_share_one_budget(dns_server):
    """Each query is under the per-query timeout, but together they exceed the budget."""
    zone = dns_server.zone
    mechanisms = " ".join(f"a:h{i}.example.test" for i in range(8))
    zone.add("example.test", "TXT", f"v=spf1 {mechanisms} -all")
    for i in range(8):
        zone.add(f"h{i}.example.test", "A", "198.51.100.1")
        zone.slow(f"h{i}.example.test", 0.3)
    auth = AuthHarness(dns_server.nameserver, timeout=1.0, budget=1.0)

    started = time.monotonic()
    run = auth.run(context(message()))
    elapsed = time.monotonic() - started

    assert elapsed < 1.0 + 0.5 + 0.3
    assert "SPF_TEMPERROR" in run.names
    reason = run.evidence.spf.reason
    assert "timeout" in reason or "budget" in reason
    asked = {q[0] for q in zone.queries if q[0].startswith("h")}
    assert 2 <= len(asked) < 8  # the budget ended the chain, not the lookup limit


def test_unreachable_server_gives_temperror(dns_server):
    port = dns_server.port
    dns_server.stop()  # nothing listens any more
    auth = AuthHarness(f"127.0.0.1:{port}", timeout=0.3, budget=1.0)
    run = auth.run(context(sign(message(), "rsa1", "example.test", rsa_key())))
    assert {"SPF_TEMPERROR", "DKIM_TEMPERROR", "DMARC_TEMPERROR"} <= run.names


def test_budget_ends_before_the_pipeline_budget(dns_server):
    """With [dns] budget larger than the pipeline's, ours ends first so we still answer."""
    dns_server.zone.add("example.test", "TXT", "v=spf1 -all")
    dns_server.zone.slow("example.test", 5.0)
    auth = AuthHarness(dns_server.nameserver, timeout=4.0, budget=8.0)
    auth.filter.max_seconds = 2.0
    started = time.monotonic()
    run = auth.run(context(message()))
    assert time.monotonic() - started < 2.0
    assert "SPF_TEMPERROR" in run.names
