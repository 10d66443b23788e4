"""The RFC 7208 SPF test suite (tests/data/spf) served by the loopback DNS server.

Each scenario's zone data becomes records of a `TestZone`, following the rules
of the suite's own driver (pyspf's test/testspf.py): a name with type SPF
records and no TXT records gets the same strings as TXT; "NONE" means no
record; a bare TIMEOUT entry makes every query type not listed before it fail
(SERVFAIL here, which our resolver reports as a temporary error, as a timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.dnsserver import TestZone

SUITE = Path(__file__).resolve().parent.parent / "data" / "spf" / "rfc7208-tests.yml"
QUERY_TYPES = frozenset({"A", "AAAA", "MX", "TXT", "PTR", "CNAME", "SPF"})


@dataclass(frozen=True)
class SpfCase:
    scenario: int
    name: str
    host: str
    mailfrom: str
    helo: str
    results: tuple[str, ...]  # acceptable results, the preferred one first
    explanation: str | None
    spec: str


def load_suite(path: Path = SUITE) -> tuple[list[dict], list[SpfCase]]:
    with path.open("rb") as fh:
        scenarios = list(yaml.safe_load_all(fh))
    cases = []
    for index, scenario in enumerate(scenarios):
        for name, test in scenario["tests"].items():
            result = test["result"]
            cases.append(
                SpfCase(
                    scenario=index,
                    name=name,
                    host=str(test["host"]),
                    mailfrom=str(test.get("mailfrom") or ""),
                    helo=str(test.get("helo") or ""),
                    results=tuple(result) if isinstance(result, list) else (result,),
                    explanation=test.get("explanation"),
                    spec=str(test.get("spec", "")),
                )
            )
    return scenarios, cases


def _strings(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def build_zone(scenario: dict) -> TestZone:
    zone = TestZone()
    for name, entries in (scenario.get("zonedata") or {}).items():
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        answered: set[str] = set()
        timeout = False
        generated: list[list[str]] = []
        for entry in entries:
            if entry == "TIMEOUT":
                timeout = True
                break
            for rtype, value in entry.items():
                if rtype in ("TXT", "SPF") and _strings(value) == ["NONE"]:
                    continue
                if rtype == "SPF":
                    # type 99 is not queried under RFC 7208; its strings stand in for TXT
                    if not has_txt:
                        generated.append(_strings(value))
                    continue
                answered.add(rtype)
                if rtype == "TXT":
                    zone.add(name, "TXT", _strings(value))
                elif rtype == "MX":
                    zone.add(name, "MX", (value[0], value[1]))
                else:
                    zone.add(name, rtype, value)
        if timeout:
            zone.fail(name, QUERY_TYPES - answered)
        else:
            for strings in generated:
                zone.add(name, "TXT", strings)
    return zone
