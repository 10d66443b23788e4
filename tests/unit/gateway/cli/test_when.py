"""Durations and times: one reading for every command, errors that name the flag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.cli import CliError
from gateway.cli.when import human_duration, iso, parse_duration, parse_time

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1.5d", timedelta(hours=36)),
        ("3", timedelta(days=3)),
        ("0", timedelta(0)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text, "--older-than", bare_unit="d") == expected


@pytest.mark.parametrize("text", ["soon", "-1", "7y", "d7", ""])
def test_bad_durations_name_the_flag(text):
    with pytest.raises(CliError, match="--older-than"):
        parse_duration(text, "--older-than", bare_unit="d")


def test_times_and_spans_back():
    assert parse_time("2h", "--since", NOW) == NOW - timedelta(hours=2)
    assert parse_time("2026-11-01", "--since") == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(CliError, match="--since 'yesterday'"):
        parse_time("yesterday", "--since", NOW)


def test_printed_times_carry_their_zone():
    assert iso(datetime(2026, 12, 1, 8, 30, 5, 123)) == "2026-12-01T08:30:05+00:00"
    plus_one = timezone(timedelta(hours=1))
    assert iso(datetime(2026, 12, 1, 8, 30, tzinfo=plus_one)) == "2026-12-01T08:30:00+01:00"
    assert human_duration(timedelta(days=30)) == "30d"
    assert human_duration(timedelta(hours=36)) == "36h"
