"""Evaluation math: exact intervals, the rule of three, thresholds at a target FPR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.evaluate import (
    clopper_pearson,
    ham_needed,
    metrics,
    recall_at_fpr,
    support_note,
    threshold_for_fpr,
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
    assert ham_needed(0.0001) == 29956  # "about 30,000 ham with no error"
    assert upper_bound(0, ham_needed(0.0001)) <= 0.0001 < upper_bound(0, 29955)


def test_support_note_says_when_the_ham_count_is_too_small():
    note = support_note(0, 5000, 0.0001)
    assert note and "not enough ham" in note and "29956" in note
    assert support_note(0, 40000, 0.0001) is None


def test_threshold_for_fpr_allows_floor_of_fpr_times_n_false_positives():
    ham = np.arange(1000, dtype=float)  # scores 0..999
    t = threshold_for_fpr(ham, 0.01)  # 10 ham may be at or above it
    assert np.sum(ham >= t) == 10
    t0 = threshold_for_fpr(ham, 0.0001)  # fewer than one allowed: above the top ham
    assert t0 > 999 and math.isclose(t0, 999, rel_tol=1e-9)
    with pytest.raises(ValueError):
        threshold_for_fpr([], 0.1)


def test_recall_at_fpr():
    ham = np.array([0.0, 1.0, 2.0, 3.0])
    spam = np.array([2.5, 3.5, 4.0, 1.5])
    assert recall_at_fpr(ham, spam, 0.0) == 0.5  # above 3.0: 3.5 and 4.0
    assert recall_at_fpr(ham, spam, 0.25) == 0.75  # above 2.0 (one ham allowed)


def test_metrics_report():
    labels = np.array([0] * 6 + [1] * 4)
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 0.8, 0.85, 0.95, 0.99])
    r = metrics(labels, scores, threshold=0.7)
    assert (r["ham"], r["spam"], r["false_positives"], r["false_negatives"]) == (6, 4, 1, 0)
    assert r["spam_recall"] == 1.0 and r["fp_rate"] == pytest.approx(1 / 6)
    lo, hi = r["fp_rate_ci95"]
    assert lo < 1 / 6 < hi
    assert r["auc"] == pytest.approx(22 / 24)  # ham 0.9 outranks spam 0.8 and 0.85
    assert set(r["recall_at_fpr"]) == {"0.001", "0.0001"}
    assert any("not enough ham" in n for n in r["notes"])
    spam_only = metrics(np.array([1, 1]), np.array([0.9, 0.1]), threshold=0.5)
    assert spam_only["fp_rate"] is None and spam_only["auc"] is None
    assert spam_only["spam_recall"] == 0.5
