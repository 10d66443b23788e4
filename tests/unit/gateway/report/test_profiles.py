"""Guarantee profiles are data: the shipped ones, an operator's own, clear errors."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from gateway.report.profiles import METRICS, choose, load_profile_file, load_profiles


def test_shipped_profiles_hold_the_agreements_promises():
    profiles = load_profiles()
    assert {"tencent", "21cn", "strict"} <= set(profiles)
    tencent, cn = profiles["tencent"].guarantees, profiles["21cn"].guarantees
    assert tencent["virus_detection_rate"] == 0.99 and tencent["spam_filter_rate"] == 0.97
    assert tencent["false_positive_rate"] == 0.0001
    assert cn["virus_detection_rate"] == 0.999 and cn["virus_clean_rate"] == 0.995
    assert "false_positive_rate" not in cn
    for g in (tencent, cn):
        assert g["delay_avg_s"] == 60 and g["delay_max_s"] == 3600 and g["delay_over_1h"] == 2
        assert g["availability"] == 0.999 and g["signature_age_days"] == 7


def test_strict_is_the_tightest_of_the_shipped_agreements():
    profiles = load_profiles()
    strict = profiles["strict"].guarantees
    others = [p.guarantees for name, p in profiles.items() if name != "strict"]
    for metric, direction in METRICS.items():
        promised = [g[metric] for g in others if metric in g]
        if not promised:
            assert metric not in strict
            continue
        tightest = max(promised) if direction == "at_least" else min(promised)
        assert strict[metric] == tightest, metric


def test_operator_profile_adds_and_replaces(tmp_path):
    (tmp_path / "acme.toml").write_text(
        'name = "acme"\ndescription = "ours"\ntagged_counts_as_filtered = true\n'
        "[guarantees]\nspam_filter_rate = 0.9\n"
    )
    (tmp_path / "tencent.toml").write_text('name = "tencent"\n[guarantees]\navailability = 0.99\n')
    profiles = load_profiles(tmp_path)
    assert profiles["acme"].tagged_counts_as_filtered is True
    assert profiles["acme"].guarantees == {"spam_filter_rate": 0.9}
    assert profiles["tencent"].guarantees == {"availability": 0.99}
    assert choose(profiles, None).name == "strict"
    with pytest.raises(ConfigError, match="'nope' not found"):
        choose(profiles, "nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "bad"\n[guarantees]\nspam_rate = 0.9\n', "guarantees.spam_rate: unknown metric"),
        ('name = "bad"\n[guarantees]\nspam_filter_rate = 97\n', "a rate is a fraction"),
        ('name = "bad"\n[guarantees]\ndelay_avg_s = "60"\n', "must be a number"),
        ('name = "other"\n', "name: must be the file name"),
        ('name = "bad"\nguarantee = 1\n', "guarantee: unknown key"),
        ('name = "bad"\n[guarantees\n', "line 2"),
    ],
)
def test_bad_profile_names_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_profile_file(path)
    assert str(path) in str(info.value) and message in str(info.value)
