"""The report reads a month in one pass: SQLite and PostgreSQL give the same report.

SQLite streams the month's rows and groups them in Python, PostgreSQL groups with
its own hash aggregate; a seeded month (every outcome, deferred and bounced mail,
a detect-only mailbox, antivirus off, feedback) must come out identical on both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.config import settings_from_dict
from gateway.report.build import build_report
from gateway.store.db import create_schema, make_engine
from gateway.store.feedback import add_feedback_now
from tests.support.ledgerseed import Seed

NOV = datetime(2026, 11, 1, tzinfo=UTC)
SETTINGS = settings_from_dict({"domains": {"accept": ["one.test", "two.test"]}})


def seed_month(engine) -> None:
    seed = Seed(engine)
    at = NOV + timedelta(days=2, hours=5)
    seed.many(30, "a@one.test", at, delay_s=1.234)
    seed.many(5, "b@one.test", at + timedelta(days=1), delay_s=4000.0, attempts=3)
    seed.many(7, "a@one.test", at, action="quarantine", spam=True)
    seed.many(4, "c@two.test", at + timedelta(days=9), action="reject", spam=True)
    seed.many(3, "c@two.test", at, action="tag", spam=True, delay_s=0.5)
    seed.many(2, "Det@two.test", at, virus=True, av_mode="detect", delay_s=2.0)
    seed.many(2, "d@two.test", at, virus=True, cleaned=True, delay_s=2.0)
    seed.mail("off@two.test", at, virus=True, av_enabled=None, delay_s=2.0)
    seed.mail("e@two.test", at, status="bounced", delay_s=None)
    missed = seed.mail(["a@one.test", "c@two.test"], at + timedelta(days=20), delay_s=9.99)
    seed.mail("a@one.test", NOV - timedelta(hours=1))  # October: not in the report
    seed.commit()
    add_feedback_now(engine, missed, "spam", source="user")


def report_of(url: str, domain: str | None) -> dict:
    engine = make_engine(url)
    try:
        create_schema(engine)
        seed_month(engine)
        out = build_report(
            engine, SETTINGS, "2026-11", domain=domain, now=datetime(2026, 12, 5, tzinfo=UTC)
        )
    finally:
        engine.dispose()
    return out


@pytest.mark.parametrize("domain", [None, "two.test"])
def test_sqlite_and_postgresql_give_the_same_report(tmp_path, postgres_url, domain):
    lite = report_of(f"sqlite:///{tmp_path / 'ledger.db'}", domain)
    pg = report_of(postgres_url, domain)
    for scope in [lite, pg]:  # the seed's queue ids run on from one database to the next
        for one in [scope.get("overall", {}), *scope["domains"].values()]:
            for row in one.get("bounced", []):
                row["queue_id"] = "Q"
    assert not list(_diff(lite, pg))[:8]
    scope = lite["overall"] if domain is None else lite["domains"]["two.test"]
    counts = scope["counts"]
    if domain is None:
        assert counts["recipients"] == 57
        assert counts["deferred_then_delivered"] == 5 and counts["delay_over_1h"] == 5
        assert scope["delay_max_s"]["value"] == 4000.0
    assert counts["detect_only_mailboxes"] == 1
    assert counts["virus_detect_only"] == 2 and counts["virus_not_scanned"] == 1
    assert counts["bounced"] == 1
    assert counts["reported_spam"] == (2 if domain is None else 1)  # one mail, two domains


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _diff(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diff(x, y, f"{path}[{i}]")
    elif a != b:
        yield path, a, b
