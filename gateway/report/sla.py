"""The monthly service-agreement report, computed from the ledger alone.

`build_report` returns a plain data structure (dicts, lists, numbers, strings):
the text, JSON and HTML renderers and the web console all draw from it.

The unit is a mail as one recipient got it (a mail to two domains counts once in
each). What each mail really was comes from its verdict, overridden by the
latest feedback about it (a later report wins; feedback that came after the
month counts in the month the mail was received):

- virus: flagged at intake, or labelled virus later (rescan hit, staff report),
  unless labelled ham. Only mailboxes with antivirus on count.
- spam: judged spam, or labelled spam, unless labelled ham or virus.
- legitimate: everything else received (all mail minus spam and viruses).
- filtered: quarantined or rejected, or tagged when the profile counts tagging.

Every rate comes with a 95% two-sided Clopper-Pearson interval, and the status
follows from the interval, not from the point value: "met" when the whole
interval keeps the promise, "missed" when the whole interval breaks it, and
"not enough data" in between (0 false positives in 2,000 legitimate mails cannot
show <= 0.01%). Delays, counts, availability and signature ages are facts, not
samples: their status compares the value itself (the average delay has a
Student-t interval, and is judged by it like a rate).
"""

from __future__ import annotations

import calendar
import itertools
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway import stats
from gateway.report.profiles import METRICS, Profile
from gateway.store.feedback import HAM, SPAM, VIRUS, effective_labels, label_for

MET, MISSED, NOT_ENOUGH = "met", "missed", "not enough data"
INTERVAL = {
    "method": "clopper-pearson",
    "confidence": stats.CONFIDENCE,
    "sides": 2,
    "status_rule": "met when the whole 95% interval keeps the guarantee, missed when the whole "
    "interval breaks it, not enough data otherwise; delay maximum, count over one hour, "
    "availability and signature age are exact and compared as they are",
}
FILTERED = ("quarantine", "reject")
HOUR = 3600.0
DELAY_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, math.inf)
VOLUME_KINDS = ("clean", "tagged", "quarantined", "rejected", "virus")
# every scope's "counts" has each of these (0 when none)
COUNT_KEYS = (
    "recipients",
    "virus",
    "virus_detected",
    "virus_cleaned",
    "virus_detect_only",
    "detect_only_mailboxes",
    "virus_not_scanned",
    "spam",
    "spam_filtered",
    "legitimate",
    "false_positives",
    "reported_spam",
    "reported_ham",
    "reported_virus",
    "delivered",
    "deferred_then_delivered",
    "delay_over_1h",
    "bounced",
    "still_queued",
    "unmatched_reports",
)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """'2026-11' -> [2026-11-01, 2026-12-01) in UTC; ValueError naming the format."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"month {month!r}: expected YYYY-MM, e.g. 2026-11") from None
    days = calendar.monthrange(start.year, start.month)[1]
    return start, start + timedelta(days=days)


@dataclass
class Tally:
    """Counts for one scope (a domain, or everything), fed groups of recipients."""

    tagged_counts: bool
    days: list[str]
    c: Counter = field(default_factory=Counter)
    delays: Counter = field(default_factory=Counter)  # delay (10 ms steps) -> copies
    delay_n: int = 0
    delay_sum: float = 0.0
    delay_squares: float = 0.0
    delay_max: float | None = None
    daily: dict[str, Counter] = field(default_factory=dict)
    detect_only_mailboxes: int = 0

    def add(self, f: Any) -> None:
        """A group of `f.n` recipients with the same outcome, before any feedback."""
        c, n = self.c, f.n
        c["recipients"] += n
        self._day(f)[_volume_kind(f)] += n
        self.classify(f, None, n)
        if f.status == "bounced":
            c["bounced"] += n
        elif f.status == "pending":
            c["still_queued"] += n
        elif f.status == "delivered" and f.deferred:
            c["deferred_then_delivered"] += n

    def relabel(self, f: Any, label: str) -> None:
        """One recipient that feedback says was `label`: counted again as such."""
        self.classify(f, None, -1)
        self.classify(f, label, 1)
        self.c[f"reported_{label}"] += 1

    def classify(self, f: Any, label: str | None, n: int) -> None:
        c, day = self.c, self._day(f)
        filtered = f.action in FILTERED or (f.action == "tag" and self.tagged_counts)
        if label == VIRUS or (f.virus_found and label != HAM):
            if not f.av_enabled:  # antivirus off (or no scanner) for this mailbox
                c["virus_not_scanned"] += n
                return
            c["virus"] += n
            day["virus_total"] += n
            if not f.virus_found:  # found later: a rescan hit or a report
                return
            c["virus_detected"] += n
            day["virus_detected"] += n
            kept_out = f.status in ("quarantined", "rejected") or f.outcome == "rejected"
            if (f.cleaned and f.status != "released") or kept_out:
                c["virus_cleaned"] += n
            elif f.av_mode == "detect":
                c["virus_detect_only"] += n
        elif label == SPAM or (label is None and f.spam):
            c["spam"] += n
            day["spam"] += n
            if filtered:
                c["spam_filtered"] += n
                day["spam_filtered"] += n
        else:
            c["legitimate"] += n
            day["legitimate"] += n
            if label == HAM and (filtered or f.virus_found):
                c["false_positives"] += n
                day["false_positives"] += n

    def add_delays(self, g: Any) -> None:
        """A ledger_read.DelayGroup: copies whose delay rounds to the same 10 ms."""
        self.delays[max(0.0, g.value)] += g.n
        self.delay_n += g.n
        self.delay_sum += g.total
        self.delay_squares += g.squares
        self.delay_max = g.maximum if self.delay_max is None else max(self.delay_max, g.maximum)
        if g.over_1h:
            self.c["delay_over_1h"] += g.n

    def _delay_at(self, rank: int) -> float:
        """The delay of the copy at 0-based `rank` in delay order."""
        seen = 0
        for value in sorted(self.delays):
            seen += self.delays[value]
            if seen > rank:
                return value
        raise IndexError(rank)

    def _day(self, f: Any) -> Counter:
        day = self.daily.get(f.day)
        if day is None:
            day = self.daily[f.day] = Counter()
        return day

    # -- the scope's part of the report ------------------------------------------

    def metrics(self, profile: Profile, availability: dict, signatures: dict) -> dict[str, Any]:
        c = self.c
        out = {
            "virus_detection_rate": _rate(
                profile, "virus_detection_rate", c["virus_detected"], c["virus"]
            ),
            "virus_clean_rate": _rate(profile, "virus_clean_rate", c["virus_cleaned"], c["virus"]),
            "spam_filter_rate": _rate(profile, "spam_filter_rate", c["spam_filtered"], c["spam"]),
            "false_positive_rate": _rate(
                profile, "false_positive_rate", c["false_positives"], c["legitimate"]
            ),
        }
        out.update(self._delay_metrics(profile))
        up, measured = availability["up_minutes"], availability["measured_minutes"]
        out["availability"] = _exact(
            profile, "availability", up / measured if measured else None, up, measured
        )
        out["signature_age_days"] = _exact(
            profile, "signature_age_days", signatures["oldest_age_days"], None, None
        )
        return out

    def _delay_metrics(self, profile: Profile) -> dict[str, Any]:
        n = self.delay_n
        avg = max(0.0, self.delay_sum / n) if n else None
        avg_ci = stats.mean_interval(self.delay_sum, self.delay_squares, n)
        p99 = self._delay_at(min(n - 1, math.ceil(0.99 * n) - 1)) if n else None
        ranks = stats.quantile_interval(n, 0.99)
        p99_ci = (self._delay_at(ranks[0]), self._delay_at(ranks[1])) if ranks else None
        over = self.c["delay_over_1h"]
        return {
            "delay_avg_s": _metric(
                profile, "delay_avg_s", avg, avg_ci, self.delay_sum if n else None, n
            ),
            "delay_p99_s": _metric(profile, "delay_p99_s", p99, p99_ci, None, n),
            "delay_max_s": _exact(profile, "delay_max_s", self.delay_max, None, n),
            "delay_over_1h": _exact(profile, "delay_over_1h", over if n else None, over, n),
        }

    def histogram(self) -> list[dict[str, Any]]:
        counts = [0] * len(DELAY_BUCKETS)
        for delay, count in self.delays.items():
            for index, edge in enumerate(DELAY_BUCKETS):
                if delay <= edge:
                    counts[index] += count
                    break
        return [
            {"le": None if math.isinf(edge) else edge, "count": count}
            for edge, count in zip(DELAY_BUCKETS, counts, strict=True)
        ]

    def daily_rows(self, downtime: dict[str, int]) -> list[dict[str, Any]]:
        rows = []
        for day in self.days:
            d = self.daily.get(day, Counter())
            rows.append(
                {
                    "day": day,
                    "volume": {kind: d[kind] for kind in VOLUME_KINDS},
                    "rates": {
                        "spam_filter_rate": _ratio(d["spam_filtered"], d["spam"]),
                        "false_positive_rate": _ratio(d["false_positives"], d["legitimate"]),
                        "virus_detection_rate": _ratio(d["virus_detected"], d["virus_total"]),
                    },
                    "downtime_minutes": downtime.get(day, 0),
                }
            )
        return rows


def _volume_kind(f: Any) -> str:
    if f.virus_found:
        return "virus"
    if f.action == "reject" or f.status == "rejected":
        return "rejected"
    if f.action == "quarantine":
        return "quarantined"
    if f.action == "tag":
        return "tagged"
    return "clean"


def _ratio(k: int, n: int) -> float | None:
    return k / n if n else None


def _status(metric: str, guarantee: float | None, value: float | None, ci: Any) -> str | None:
    if guarantee is None:
        return None
    if value is None:
        return NOT_ENOUGH
    lo, hi = ci if ci is not None else (value, value)
    if METRICS[metric] == "at_least":
        return MET if lo >= guarantee else MISSED if hi < guarantee else NOT_ENOUGH
    return MET if hi <= guarantee else MISSED if lo > guarantee else NOT_ENOUGH


def _metric(
    profile: Profile,
    metric: str,
    value: float | None,
    ci: tuple[float, float] | None,
    numerator: float | None,
    denominator: int | None,
) -> dict[str, Any]:
    guarantee = profile.guarantee(metric)
    if value is not None and ci is None and metric not in _EXACT:
        # a sampled value without an interval (too few values) supports no claim
        status = None if guarantee is None else NOT_ENOUGH
    else:
        status = _status(metric, guarantee, value, ci)
    return {
        "value": None if value is None else round(value, 6),
        "ci95": None if ci is None else [round(ci[0], 6), round(ci[1], 6)],
        "numerator": None if numerator is None else round(numerator, 3),
        "denominator": denominator,
        "guarantee": guarantee,
        "status": status,
    }


_EXACT = {"delay_max_s", "delay_over_1h", "availability", "signature_age_days"}


def _exact(
    profile: Profile,
    metric: str,
    value: float | None,
    numerator: float | None,
    denominator: int | None,
) -> dict[str, Any]:
    return _metric(profile, metric, value, None, numerator, denominator)


def _rate(profile: Profile, metric: str, k: int, n: int) -> dict[str, Any]:
    if n == 0:
        return _metric(profile, metric, None, None, k, n)
    return _metric(profile, metric, k / n, stats.clopper_pearson(k, n), k, n)


# -- availability and signatures (the same for every domain) ------------------------


def availability(
    minutes: Iterable[tuple[datetime, bool, bool]],
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    """Calendar minutes of [start, end) with an accepting heartbeat from any node are up;
    the rest are down. Minutes whose every probe found the next hop unreachable are the
    protected server's outage, counted apart. `minutes`: (minute, next hop seen up,
    next hop seen down), as gateway.store.availability.minutes_between gives them."""
    start = start.replace(second=0, microsecond=0)
    up: set[int] = set()
    hop_ok: set[int] = set()
    hop_down: set[int] = set()
    base = start.timestamp()
    for at, ok, bad in minutes:
        minute = int((_aware(at).timestamp() - base) // 60)
        up.add(minute)
        if ok:
            hop_ok.add(minute)
        if bad:
            hop_down.add(minute)
    measured = max(0, math.ceil((end - start).total_seconds() / 60))
    down_by_day: Counter = Counter()
    outages: list[list[int]] = []
    for minute in range(measured):
        if minute in up:
            continue
        down_by_day[(start + timedelta(minutes=minute)).strftime("%Y-%m-%d")] += 1
        if outages and outages[-1][1] == minute:
            outages[-1][1] = minute + 1
        else:
            outages.append([minute, minute + 1])
    longest = sorted(outages, key=lambda o: o[0] - o[1])[:10]
    return {
        "measured_from": start.isoformat(),
        "measured_until": end.isoformat(),
        "measured_minutes": measured,
        "up_minutes": len(up & set(range(measured))),
        "downtime_minutes": sum(down_by_day.values()),
        "downtime_by_day": dict(sorted(down_by_day.items())),
        "longest_outages": [
            {
                "start": (start + timedelta(minutes=a)).isoformat(),
                "minutes": b - a,
            }
            for a, b in longest
        ],
        "next_hop_unreachable_minutes": len(hop_down - hop_ok),
        "next_hop_note": "minutes in which the protected mail server did not answer; its "
        "outage, not the gateway's: mail was accepted and queued",
    }


def signature_freshness(
    versions: list[dict[str, Any]], start: datetime, end: datetime
) -> dict[str, Any]:
    """The oldest signature database in use during the month (its age when last used
    in it) and the longest gap between database dates."""
    dated = [v for v in versions if v.get("db_date") is not None]
    oldest = None
    for v in dated:
        used_until = min(_aware(v["last_seen"]), end)
        age = (used_until - _aware(v["db_date"])).total_seconds() / 86400
        if oldest is None or age > oldest[0]:
            oldest = (age, v)
    dates = sorted({_aware(v["db_date"]) for v in dated})
    gaps = [(b - a).total_seconds() / 86400 for a, b in itertools.pairwise(dates)]
    return {
        "oldest_age_days": None if oldest is None else round(oldest[0], 3),
        "oldest_version": None if oldest is None else oldest[1]["version"],
        "longest_gap_days": round(max(gaps), 3) if gaps else None,
        "versions_in_use": sorted({v["version"] for v in versions}),
        "undated_versions": sorted({v["version"] for v in versions if v.get("db_date") is None}),
    }


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# -- the whole report -----------------------------------------------------------------


@dataclass(frozen=True)
class ReportInput:
    """What the report is computed from (read by gateway/report/build.py)."""

    month: str
    start: datetime
    end: datetime
    facts: list[Any]  # ledger_read.Fact groups
    labelled: list[Any]  # ledger_read.Labelled: recipients of mail with feedback
    delays: Iterable[Any]  # ledger_read.DelayGroup
    detect_only: dict[str, int]
    feedback: list[Any]
    beats: list[tuple[datetime, bool, bool]]  # heartbeat minutes
    first_beat: datetime | None
    versions: list[dict[str, Any]]
    bounced: list[dict[str, Any]]
    domains: list[str]  # domains reported even without mail (the accepted ones)
    profile_of: dict[str, Profile]  # domain -> profile; "" -> the overall profile
    only_domain: str | None
    now: datetime
    extra_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # domain -> counts


def compute(inp: ReportInput) -> dict[str, Any]:
    days = [
        (inp.start + timedelta(days=i)).strftime("%Y-%m-%d")
        for i in range((inp.end - inp.start).days)
    ]
    overall_profile = inp.profile_of[""]
    tallies: dict[str, Tally] = {}

    def tally_for(domain: str) -> Tally:
        profile = inp.profile_of.get(domain, overall_profile)
        return Tally(profile.tagged_counts_as_filtered, days)

    for domain in inp.domains:
        tallies[domain] = tally_for(domain)
    overall = Tally(overall_profile.tagged_counts_as_filtered, days)
    for f in inp.facts:
        tally = tallies.get(f.domain)
        if tally is None:
            tally = tallies[f.domain] = tally_for(f.domain)
        tally.add(f)
        overall.add(f)
    labels = effective_labels(inp.feedback)
    feedback_counts: dict[str, Counter] = {}
    for one in inp.labelled:
        label = label_for(labels, one.message_id, one.rcpt)
        if label is None:
            continue
        tallies[one.fact.domain].relabel(one.fact, label)
        overall.relabel(one.fact, label)
        feedback_counts.setdefault(one.fact.domain, Counter())[label] += 1
    for group in inp.delays:
        tallies[group.domain].add_delays(group)
        overall.add_delays(group)
    for domain, count in inp.detect_only.items():
        tallies[domain].detect_only_mailboxes = count
        overall.detect_only_mailboxes += count

    # measured since the gateway first ran: no heartbeat on record is no data, not downtime
    measured_from = max(inp.start, _aware(inp.first_beat)) if inp.first_beat else inp.end
    measured_until = min(inp.end, inp.now)
    avail = availability(inp.beats, measured_from, max(measured_from, measured_until))
    sigs = signature_freshness(inp.versions, inp.start, inp.end)

    def scope(domain: str | None, tally: Tally) -> dict[str, Any]:
        profile = inp.profile_of.get(domain or "", overall_profile)
        counts = {key: tally.c[key] for key in COUNT_KEYS}
        counts["detect_only_mailboxes"] = tally.detect_only_mailboxes
        counts["delivered"] = tally.delay_n
        if domain is None:
            fb: Counter = sum(feedback_counts.values(), Counter())
            extra: Counter = sum((Counter(v) for v in inp.extra_counts.values()), Counter())
        else:
            fb = feedback_counts.get(domain, Counter())
            extra = Counter(inp.extra_counts.get(domain, {}))
        counts.update(extra)
        return {
            "domain": domain,
            "profile": {
                "name": profile.name,
                "description": profile.description,
                "tagged_counts_as_filtered": profile.tagged_counts_as_filtered,
            },
            **tally.metrics(profile, avail, sigs),
            "counts": counts,
            "feedback": {label: fb[label] for label in (SPAM, HAM, VIRUS)},
            "bounced": [b for b in inp.bounced if domain is None or b["domain"] == domain],
            "delay_histogram": tally.histogram(),
            "daily": tally.daily_rows(avail["downtime_by_day"]),
        }

    report: dict[str, Any] = {
        "month": inp.month,
        "period": {"start": inp.start.isoformat(), "end": inp.end.isoformat()},
        "generated_at": inp.now.isoformat(),
        "interval": INTERVAL,
        "availability": avail,
        "signatures": sigs,
        "domains": {d: scope(d, tallies[d]) for d in sorted(tallies)},
    }
    if inp.only_domain is None:
        report["overall"] = scope(None, overall)
    else:
        report["domains"] = {
            d: v for d, v in report["domains"].items() if d == inp.only_domain
        } or {inp.only_domain: scope(inp.only_domain, tally_for(inp.only_domain))}
    return report
