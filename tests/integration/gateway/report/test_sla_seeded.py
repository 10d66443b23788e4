"""A seeded ledger with known events gives exactly the expected numbers and statuses.

One month (November 2026) of known mail, feedback, heartbeats and signature
versions; every definition of the report is checked against hand-counted values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from gateway.config import settings_from_dict
from gateway.report.build import build_report
from gateway.stats import clopper_pearson
from gateway.store import availability
from gateway.store.db import create_schema, make_engine
from gateway.store.feedback import add_feedback_now
from tests.support.ledgerseed import Seed

pytestmark = pytest.mark.slow

NOV = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 15, tzinfo=UTC)
SETTINGS = settings_from_dict(
    {
        "domains": {"accept": ["big.test", "good.test", "small.test", "quiet.test"]},
        "report": {"domain_profiles": {"big.test": "tencent", "good.test": "tencent"}},
    }
)


def day(n: int, hour: int = 12) -> datetime:
    return NOV + timedelta(days=n - 1, hours=hour)


def ci(k: int, n: int) -> list[float]:
    return [round(x, 6) for x in clopper_pearson(k, n)]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('books') / 'ledger.db'}")
    create_schema(engine)
    seed = Seed(engine)
    d = {"delay_s": 2.0}
    # viruses: 1000 flagged and cleaned, 2 to a detect-only mailbox, 3 found later
    seed.many(1000, "u@big.test", day(3), virus=True, cleaned=True, **d)
    seed.many(2, "det@big.test", day(4), virus=True, av_mode="detect", **d)
    late_virus = seed.many(3, "u@big.test", day(5), **d)
    seed.mail("off@big.test", day(5), virus=True, av_enabled=False, **d)  # antivirus off
    # spam: held, refused whole, tagged (tencent does not count tags), missed
    held = seed.many(3000, "u@big.test", day(6), action="quarantine", spam=True)
    seed.many(500, "u@big.test", day(7), action="reject", spam=True)
    seed.many(100, "u@big.test", day(8), action="tag", spam=True, **d)
    missed = seed.many(40, "u@big.test", day(9), **d)
    overridden = seed.mail("u@big.test", day(9), **d)
    # legitimate mail, three of it deferred for over an hour before delivery
    seed.many(40000 - 3, "u@big.test", day(10), **d)
    seed.many(3, "u@big.test", day(11), delay_s=4000.0, attempts=3)
    seed.many(2, "u@big.test", day(12), status="bounced", delay_s=None)
    seed.mail("u@big.test", day(13), status="pending", delay_s=None)
    seed.mail("u@big.test", datetime(2026, 10, 31, 23, 59, tzinfo=UTC), **d)  # October
    seed.many(40000, "u@good.test", day(14), **d)
    seed.many(5, "u@small.test", day(15), **d)
    seed.mail("u@small.test", day(15), action="quarantine", spam=True)
    seed.commit()
    for n, qid in enumerate(late_virus):  # the last one after the month ended
        when = datetime(2026, 12, 3, tzinfo=UTC) if n == 2 else day(20)
        add_feedback_now(engine, qid, "virus", source="rescan", when=when, event=f"r:{qid}")
    for qid in held[:2]:  # released as legitimate
        add_feedback_now(engine, qid, "ham", source="release", actor="abuse", when=day(16))
    for qid in missed:
        add_feedback_now(engine, qid, "spam", source="user", actor="u@big.test", when=day(17))
    add_feedback_now(engine, missed[0], "spam", source="user", actor="boss", when=day(18))
    add_feedback_now(engine, overridden, "spam", source="user", actor="u", when=day(17))
    add_feedback_now(engine, overridden, "ham", source="abuse", actor="staff", when=day(19))
    _beats(engine)
    _signatures(engine)
    yield engine
    engine.dispose()


def _beats(engine) -> None:
    """Node a beating every minute all month, node b every minute (30 s later) from day
    19 to 21; both gone 50 minutes on day 12; the next hop unreachable for 20 minutes
    on day 20."""
    rows = []
    outage = (day(12, 3), day(12, 3) + timedelta(minutes=50))
    hop_down = (day(20, 8), day(20, 8) + timedelta(minutes=20))
    t = NOV
    while t < NOV + timedelta(days=30):
        ok = not hop_down[0] <= t < hop_down[1]
        if not outage[0] <= t < outage[1]:
            rows.append({"node": "a", "at": t, "accepting": True, "next_hop_ok": ok})
        if day(19, 0) <= t < day(22, 0):
            b = t + timedelta(seconds=30)
            rows.append({"node": "b", "at": b, "accepting": True, "next_hop_ok": ok})
        t += timedelta(minutes=1)
    with engine.begin() as conn:
        conn.execute(insert(availability.heartbeats), rows)


def _signatures(engine) -> None:
    with engine.begin() as conn:
        availability.seen_signatures(
            conn, "a", NOV, "ClamAV 1.4/27000/x", 27000, datetime(2026, 10, 30, tzinfo=UTC)
        )
        availability.seen_signatures(conn, "a", day(9), "ClamAV 1.4/27000/x", 27000, None)
        availability.seen_signatures(conn, "a", day(9, 13), "ClamAV 1.4/27010/y", 27010, day(9))
        availability.seen_signatures(conn, "a", day(30), "ClamAV 1.4/27010/y", 27010, day(9))


def test_every_metric_of_a_domain_with_misses(ledger):
    report = build_report(ledger, SETTINGS, "2026-11", now=NOW)
    big = report["domains"]["big.test"]
    assert big["profile"]["name"] == "tencent"
    # viruses: 1000 + 2 flagged, 3 found later (one reported in December)
    m = big["virus_detection_rate"]
    assert (m["numerator"], m["denominator"]) == (1002, 1005)
    assert m["ci95"] == ci(1002, 1005) and m["guarantee"] == 0.99 and m["status"] == "met"
    m = big["virus_clean_rate"]
    assert (m["numerator"], m["denominator"]) == (1000, 1005)
    assert m["status"] == "not enough data"  # interval straddles 99%
    assert big["counts"]["virus_detect_only"] == 2 and big["counts"]["detect_only_mailboxes"] == 1
    assert big["counts"]["virus_not_scanned"] == 1
    # spam: 2998 held + 500 refused filtered; 100 tagged + 40 reported missed
    m = big["spam_filter_rate"]
    assert (m["numerator"], m["denominator"]) == (3498, 3638)
    assert m["value"] == round(3498 / 3638, 6) and m["status"] == "missed"
    assert m["ci95"] == ci(3498, 3638) and m["ci95"][1] < 0.97
    # false positives: 2 released of 40000 - 3 + 3 + 1 (overridden) + 2 + 3 + ...
    m = big["false_positive_rate"]
    legitimate = 2 + 1 + 40000 + 2 + 1  # released, overridden, clean, bounced, queued
    assert (m["numerator"], m["denominator"]) == (2, legitimate)
    assert m["status"] == "not enough data"  # 2 in 40,006 cannot show <= 0.01%
    assert big["feedback"] == {"spam": 40, "ham": 3, "virus": 3}
    # delays: every delivered copy, the three deferred ones included; bounced apart
    delivered = 1000 + 2 + 3 + 1 + 100 + 40 + 1 + 40000
    m = big["delay_avg_s"]
    assert m["denominator"] == delivered
    assert m["value"] == round(((delivered - 3) * 2.0 + 3 * 4000.0) / delivered, 6)
    assert m["status"] == "met"
    assert big["delay_p99_s"]["value"] == 2.0 and big["delay_p99_s"]["status"] is None
    assert big["delay_max_s"]["value"] == 4000.0 and big["delay_max_s"]["status"] == "missed"
    m = big["delay_over_1h"]
    assert (m["value"], m["guarantee"], m["status"]) == (3, 2.0, "missed")
    assert big["counts"]["deferred_then_delivered"] == 3
    assert big["counts"]["bounced"] == 2 and len(big["bounced"]) == 2
    assert big["counts"]["still_queued"] == 1
    hist = {b["le"]: b["count"] for b in big["delay_histogram"]}
    assert hist[5.0] == delivered - 3 and hist[None] == 3
    # daily volume by verdict
    daily = {row["day"]: row for row in big["daily"]}
    assert len(big["daily"]) == 30
    assert daily["2026-11-06"]["volume"]["quarantined"] == 3000
    assert daily["2026-11-07"]["volume"]["rejected"] == 500
    assert daily["2026-11-03"]["volume"]["virus"] == 1000
    assert daily["2026-11-06"]["rates"]["false_positive_rate"] == 1.0  # 2 of 2 legit held


def test_availability_and_signatures_are_the_same_for_every_domain(ledger):
    report = build_report(ledger, SETTINGS, "2026-11", now=NOW)
    a = report["availability"]
    assert a["measured_minutes"] == 30 * 1440 and a["downtime_minutes"] == 50
    assert a["downtime_by_day"] == {"2026-11-12": 50}
    assert a["next_hop_unreachable_minutes"] == 20
    assert a["longest_outages"][0]["minutes"] == 50
    for scope in (report["overall"], *report["domains"].values()):
        m = scope["availability"]
        assert (m["numerator"], m["denominator"]) == (43150, 43200)
        assert m["status"] == "missed"  # 50 minutes > the 43 allowed
        s = scope["signature_age_days"]
        # the second database, built on day 9 at noon, was still in use on day 30 at noon
        assert s["value"] == 21.0 and s["status"] == "missed"
    sigs = report["signatures"]
    assert sigs["oldest_version"] == "ClamAV 1.4/27010/y"
    assert sigs["longest_gap_days"] == 10.5  # Oct 30 00:00 -> Nov 9 12:00
    daily = {r["day"]: r for r in report["domains"]["big.test"]["daily"]}
    assert daily["2026-11-12"]["downtime_minutes"] == 50


def test_a_domain_with_enough_mail_meets_the_false_positive_promise(ledger):
    good = build_report(ledger, SETTINGS, "2026-11", now=NOW)["domains"]["good.test"]
    m = good["false_positive_rate"]
    assert (m["value"], m["numerator"], m["denominator"]) == (0.0, 0, 40000)
    assert m["ci95"][1] <= 0.0001 and m["status"] == "met"
    assert good["spam_filter_rate"]["status"] == "not enough data"  # no spam at all
    assert good["spam_filter_rate"]["value"] is None


def test_a_tiny_domain_and_a_quiet_one_have_not_enough_data(ledger):
    report = build_report(ledger, SETTINGS, "2026-11", now=NOW)
    small, quiet = report["domains"]["small.test"], report["domains"]["quiet.test"]
    assert small["spam_filter_rate"]["denominator"] == 1
    for metric in ("virus_detection_rate", "spam_filter_rate", "false_positive_rate"):
        assert small[metric]["status"] == "not enough data", metric
        assert quiet[metric]["status"] == "not enough data", metric
    assert quiet["delay_avg_s"]["value"] is None
    assert quiet["delay_avg_s"]["status"] == "not enough data"
    assert quiet["counts"]["recipients"] == 0


def test_an_empty_month_and_the_overall_scope(ledger):
    october = build_report(ledger, SETTINGS, "2026-10", now=NOW)
    # one mail at 23:59 on Oct 31, nothing else: no heartbeat yet, so no availability
    assert october["overall"]["counts"]["recipients"] == 1
    assert october["overall"]["availability"]["status"] == "not enough data"
    empty = build_report(ledger, SETTINGS, "2026-09", now=NOW)
    assert empty["overall"]["counts"]["recipients"] == 0
    for key, metric in empty["overall"].items():
        if isinstance(metric, dict) and "status" in metric and metric["guarantee"] is not None:
            assert metric["status"] == "not enough data", key
    nov = build_report(ledger, SETTINGS, "2026-11", now=NOW)["overall"]
    assert nov["profile"]["name"] == "strict"
    assert nov["counts"]["recipients"] == sum(
        s["counts"]["recipients"]
        for s in build_report(ledger, SETTINGS, "2026-11", now=NOW)["domains"].values()
    )


def test_one_domain_only_and_a_profile_override(ledger):
    report = build_report(ledger, SETTINGS, "2026-11", domain="SMALL.test", profile="21cn", now=NOW)
    assert list(report["domains"]) == ["small.test"] and "overall" not in report
    small = report["domains"]["small.test"]
    assert small["profile"]["name"] == "21cn"
    assert small["false_positive_rate"]["guarantee"] is None
    assert small["false_positive_rate"]["status"] is None  # 21cn promises nothing here
    assert small["bounced"] == [] and small["counts"]["recipients"] == 6


def test_metric_objects_have_exactly_the_documented_keys(ledger):
    scope = build_report(ledger, SETTINGS, "2026-11", now=NOW)["overall"]
    metrics = [
        "virus_detection_rate",
        "virus_clean_rate",
        "spam_filter_rate",
        "false_positive_rate",
        "delay_avg_s",
        "delay_p99_s",
        "delay_max_s",
        "delay_over_1h",
        "availability",
        "signature_age_days",
    ]
    for metric in metrics:
        assert set(scope[metric]) == {
            "value",
            "ci95",
            "numerator",
            "denominator",
            "guarantee",
            "status",
        }
        assert scope[metric]["status"] in ("met", "missed", "not enough data", None)
