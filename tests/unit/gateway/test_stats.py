"""The one implementation of binomial intervals: closed forms and textbook values."""

from __future__ import annotations

import math

import pytest

from gateway.stats import (
    clopper_pearson,
    mean_interval,
    needed_without_error,
    quantile_interval,
    upper_bound,
    wilson,
)


def test_clopper_pearson_matches_closed_forms():
    # k = 0: upper = 1 - (alpha/2)^(1/n); k = n: lower = (alpha/2)^(1/n)
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))
    lo, hi = clopper_pearson(10, 10)
    assert lo == pytest.approx(0.025 ** (1 / 10)) and hi == 1.0
    # a textbook value: 5 of 20 -> (0.0866, 0.4910)
    lo, hi = clopper_pearson(5, 20)
    assert (round(lo, 4), round(hi, 4)) == (0.0866, 0.4910)


def test_wilson_is_inside_clopper_pearson_and_contains_the_estimate():
    for k, n in ((1, 50), (25, 50), (49, 50)):
        w_lo, w_hi = wilson(k, n)
        c_lo, c_hi = clopper_pearson(k, n)
        assert c_lo <= w_lo <= k / n <= w_hi <= c_hi
    # textbook: 81 of 263 -> Wilson (0.2553, 0.3662)
    lo, hi = wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_one_sided_bound_is_the_rule_of_three_at_zero():
    assert upper_bound(0, 5000) == pytest.approx(1 - 0.05 ** (1 / 5000))
    assert upper_bound(0, 5000) == pytest.approx(3 / 5000, rel=0.01)
    assert upper_bound(3, 1000) > 0.003
    assert needed_without_error(0.0001) == 29956  # "about 30,000 ham with no error"
    assert upper_bound(0, needed_without_error(0.0001)) <= 0.0001 < upper_bound(0, 29955)


def test_empty_sample_is_the_whole_unit_interval_and_bad_counts_are_errors():
    assert clopper_pearson(0, 0) == (0.0, 1.0) == wilson(0, 0)
    with pytest.raises(ValueError):
        clopper_pearson(5, 3)
    with pytest.raises(ValueError):
        wilson(-1, 3)


def test_wilson_matches_the_antivirus_figures_in_the_docs():
    # docs/antivirus.md: 1,170 of 1,170 detected -> 99.67%-100%; 1,166 cleaned -> 99.12%-99.87%
    lo, hi = wilson(1170, 1170)
    assert (round(lo, 4), hi) == (0.9967, 1.0)
    lo, hi = wilson(1166, 1170)
    assert (round(lo, 4), round(hi, 4)) == (0.9912, 0.9987)


def test_mean_interval_is_student_t():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    lo, hi = mean_interval(sum(values), sum(v * v for v in values), len(values))
    # mean 3, sd sqrt(2.5), t(0.975, 4) = 2.7764
    half = 2.7764 * math.sqrt(2.5 / 5)
    assert lo == pytest.approx(3 - half, abs=1e-3) and hi == pytest.approx(3 + half, abs=1e-3)
    assert mean_interval(1.0, 1.0, 1) is None


def test_quantile_interval_brackets_the_rank_and_needs_enough_values():
    lo, hi = quantile_interval(10_000, 0.99)
    assert lo < 9_900 <= hi and hi - lo < 60
    assert quantile_interval(100, 0.99) is None  # the top rank is inside: no upper end
