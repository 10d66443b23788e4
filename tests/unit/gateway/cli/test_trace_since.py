"""`trace --since`: dates, times and spans back from now; a clear error otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.cli import CliError
from gateway.cli.trace import parse_since

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("30m", NOW - timedelta(minutes=30)),
        ("3d", NOW - timedelta(days=3)),
        ("1w", NOW - timedelta(weeks=1)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:30:00+01:00", datetime(2026, 11, 1, 7, 30, tzinfo=UTC)),
    ],
)
def test_since_forms(text, expected):
    assert parse_since(text, now=NOW) == expected


def test_since_nonsense_names_the_option():
    with pytest.raises(CliError, match=r"--since 'yesterday'"):
        parse_since("yesterday", now=NOW)
