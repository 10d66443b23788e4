"""Read a month from the store and compute its report (`build_report`).

The one entry point for the CLI, `eval --report` and the web console: settings
choose the profiles; `domain` limits the report to one domain (a domain admin's
report shows nothing else); `profile` overrides the configured choice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from gateway.config import ConfigError, Settings
from gateway.report import ledger_read
from gateway.report.profiles import Profile, choose, load_profiles
from gateway.report.sla import ReportInput, compute, month_bounds
from gateway.store import availability


def profiles_for(
    settings: Settings, domains: list[str], override: str | None
) -> dict[str, Profile]:
    """domain -> its profile, and "" -> the overall one."""
    profiles = load_profiles(settings.report.profiles_dir)
    cfg = settings.report
    out = {"": choose(profiles, override or cfg.profile)}
    for domain in domains:
        out[domain] = choose(profiles, override or cfg.domain_profiles.get(domain, cfg.profile))
    for domain, name in cfg.domain_profiles.items():  # a typo must not wait for the mail
        choose(profiles, name)
        out.setdefault(domain, choose(profiles, override or name))
    return out


def build_report(
    engine: Engine,
    settings: Settings,
    month: str,
    domain: str | None = None,
    profile: str | None = None,
    now: datetime | None = None,
    extra_counts: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """The report of `month` ('YYYY-MM') as a data structure (see gateway/report/sla.py)."""
    try:
        start, end = month_bounds(month)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    now = now or datetime.now(UTC)
    domain = domain.lower().rstrip(".") if domain else None
    domains = [domain] if domain else list(settings.domains.accept)
    profile_of = profiles_for(
        settings, sorted(set(domains) | set(settings.domains.accept)), profile
    )
    if extra_counts is None:
        from gateway.store import reports

        extra_counts = reports.unmatched_by_domain(engine, start, end)
    feedback = ledger_read.feedback_rows(engine, start, end, domain)
    scan = ledger_read.scan_month(engine, start, end, domain)
    inp = ReportInput(
        month=month,
        start=start,
        end=end,
        facts=scan.facts,
        labelled=ledger_read.labelled(
            engine, start, end, domain, {row.message_id for row in feedback}
        ),
        delays=scan.delays,
        detect_only=scan.detect_only,
        feedback=feedback,
        beats=availability.minutes_between(engine, start, end),
        first_beat=availability.first_beat(engine),
        versions=availability.versions_in_use(engine, start, end),
        bounced=ledger_read.bounced(engine, start, end, domain),
        domains=domains,
        profile_of=profile_of,
        only_domain=domain,
        now=now,
        extra_counts=extra_counts or {},
    )
    return compute(inp)
