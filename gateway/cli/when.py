"""Durations and times on the command line, one way for every command.

A duration is `45s`, `30m`, `12h`, `7d` or `2w` (a bare number means the flag's own
unit, e.g. days for `--older-than`); a time is an ISO date or date-time (naive means
UTC) or a duration back from now. Times are printed ISO 8601 with their zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.cli import CliError
from gateway.durations import DURATION, DURATION_HELP, UNIT_SECONDS, seconds_of


class WhenError(CliError):
    """A duration or time the operator wrote that we cannot read (the message says why)."""


def parse_duration(text: str, flag: str, bare_unit: str = "s") -> timedelta:
    """`7d` -> 7 days; a bare number counts in `bare_unit` (one of s m h d w)."""
    try:
        seconds = seconds_of(text, bare_unit)
    except ValueError:
        raise WhenError(f"{flag} {text!r}: expected {DURATION_HELP}") from None
    if seconds < 0:
        raise WhenError(f"{flag} {text!r}: must be 0 or more")
    return timedelta(seconds=seconds)


def parse_time(text: str, flag: str, now: datetime | None = None) -> datetime:
    """An ISO date or time (naive: UTC), or a duration back from now (`2h`, `3d`)."""
    value = text.strip()
    if DURATION.match(value.lower()):
        return (now or datetime.now(UTC)) - parse_duration(value, flag)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise WhenError(
            f"{flag} {text!r}: expected 2026-11-01, an ISO time, or a span back such as 2h / 3d"
        ) from None
    # the ledger keeps UTC (SQLite stores no offset): compare in UTC
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def iso(when: datetime | None) -> str:
    """ISO 8601 with zone, to the second; naive values are UTC (as the ledger stores them)."""
    if when is None:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat(timespec="seconds")


def human_duration(span: timedelta) -> str:
    """The shortest unit that says it exactly: `7d`, `36h`, `90s`."""
    seconds = span.total_seconds()
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % UNIT_SECONDS[unit] == 0:
            return f"{int(seconds // UNIT_SECONDS[unit])}{unit}"
    return f"{seconds:g}s"
