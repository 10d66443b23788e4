"""Evaluation math: exact intervals, the rule of three, thresholds at a target FPR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.evaluate import (
    metrics,
    recall_at_fpr,
    support_note,
    threshold_for_fpr,
)


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
