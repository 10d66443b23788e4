"""Parsing clamd's VERSION reply."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from gateway.adapters.clamd import parse_version


def test_engine_database_and_date():
    v = parse_version("ClamAV 1.4.6/27002/Sun Nov  1 01:22:31 2026\n")
    assert (v.engine, v.db_version) == ("1.4.6", 27002)
    assert v.db_date == datetime(2026, 11, 1, 1, 22, 31).astimezone()
    assert v.age_days(v.db_date + timedelta(days=8)) == pytest.approx(8.0)


def test_local_signatures_only_have_no_version_or_date():
    v = parse_version("ClamAV 1.4.6")
    assert (v.engine, v.db_version, v.db_date) == ("1.4.6", None, None)
    assert v.age_days(datetime.now().astimezone()) is None


def test_old_engine_and_nul_terminated_reply():
    v = parse_version("ClamAV 0.103.11/26999/Mon Sep  4 09:24:00 2023\0")
    assert (v.engine, v.db_version, v.db_date.year) == ("0.103.11", 26999, 2023)


@pytest.mark.parametrize("reply", ["", "PONG", "ClamAV", "ClamAV 1.4.6/27002/not a date"])
def test_garbage_is_a_value_error(reply):
    with pytest.raises(ValueError):
        parse_version(reply)
