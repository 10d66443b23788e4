"""The public RFC 7208 SPF test suite, run through our SPF path and real DNS.

Every case's zone data is served by the loopback DNS server; the check is
`filters.auth.spfcheck.check_mailfrom` with a real budgeted resolver, the same
call the auth filter makes. Cases that we knowingly answer differently are in
DEVIATIONS with the reason (and in docs/authentication.md); they are strict
xfails, so a case that starts to pass is reported too.
"""

from __future__ import annotations

import pytest
import spf

from filters.auth.spfcheck import check_mailfrom
from gateway.adapters.dns import Budget, Resolver
from gateway.config import DnsSettings
from tests.support.dnsserver import LoopbackDns
from tests.support.spfsuite import build_zone, load_suite

SCENARIOS, CASES = load_suite()

# case name -> why our answer differs from the suite's
DEVIATIONS: dict[str, str] = {}


@pytest.fixture(scope="module")
def suite_server():
    """One loopback DNS server; each case switches it to its scenario's zone."""
    zones = [build_zone(s) for s in SCENARIOS]
    with LoopbackDns() as server:

        def serve(index: int) -> LoopbackDns:
            server.use(zones[index])
            return server

        yield serve


def _params() -> list:
    params = []
    for case in CASES:
        marks = []
        if case.name in DEVIATIONS:
            marks.append(pytest.mark.xfail(reason=DEVIATIONS[case.name], strict=True))
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_rfc7208_case(case, suite_server):
    server = suite_server(case.scenario)
    resolver = Resolver(DnsSettings(nameservers=[server.nameserver], timeout=2.0))
    lookups = resolver.blocking(Budget(20.0, 2.0))
    outcome = check_mailfrom(lookups, case.host, case.mailfrom, case.helo, "unknown")
    assert outcome.result in case.results, f"{case.spec}: {outcome.reason}"
    if case.explanation is not None:
        expected = case.explanation
        if expected == "DEFAULT":  # the suite's marker for "no exp= explanation"
            expected = spf.EXPLANATIONS[outcome.result]
        assert outcome.reason == expected
