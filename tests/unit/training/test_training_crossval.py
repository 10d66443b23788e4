"""Pooled cross-validation report: threshold from all ham, groups measured at it."""

import numpy as np
import pytest

from training import crossval


def test_report_groups_share_the_pooled_threshold():
    rng = np.random.default_rng(1)
    ham = rng.normal(0, 1, 20_000)
    spam = rng.normal(6, 1, 2_000)
    labels = np.r_[np.zeros(ham.size), np.ones(spam.size)].astype(int)
    scores = np.r_[ham, spam]
    corpora = np.where(np.arange(labels.size) % 2 == 0, "a", "b")
    rep = crossval.report(labels, scores, corpora, ["en"] * labels.size)
    assert rep["pooled"]["false_positives"] == 2  # floor(0.0001 * 20,000)
    assert rep["threshold"] == pytest.approx(np.sort(ham)[-3], abs=1e-9)
    recall = rep["pooled"]["recall"]
    low, high = rep["pooled"]["recall_ci95"]
    assert low < recall < high
    assert set(rep["per_corpus"]) == {"a", "b"}
    assert sum(g["spam"] for g in rep["per_corpus"].values()) == 2_000
    assert rep["per_language"]["en"]["recall"] == recall


def test_hardest_lists_top_ham_and_bottom_spam():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.9, 0.2, 5.0])
    assert crossval.hardest(labels, scores, 1) == {"ham": [1], "spam": [2]}
