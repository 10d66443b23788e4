"""Pooled k-fold cross-validation: every deduplicated message scored out of fold.

A 20% holdout of these corpora has about 6,000 ham, so "0.01% false positives" there is
less than one message and the recall at that point is decided by the single
highest-scoring ham. Pooling the out-of-fold scores of all folds gives every message
(about 30,000 ham) a score from a model that never saw it. The threshold is then chosen
on those same ham (so their false-positive count is fitted, not measured); the spam
recall at it is a fair estimate, reported with a Clopper-Pearson interval, pooled, per
corpus and per language (training.language's guess).

Folds are by fingerprint hash (training.train.fold_of): near-duplicates share a fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from training import evaluate

TARGETS = (0.001, 0.0001)


def summary(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Recall at the pooled threshold with its interval, AUC and recall at each target
    FPR of this group's own ham (the latter only meaningful for groups with ham)."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    ham, spam = scores[labels == 0], scores[labels == 1]
    caught = int((spam >= threshold).sum())
    fp = int((ham >= threshold).sum())
    out: dict[str, Any] = {"ham": int(ham.size), "spam": int(spam.size)}
    if spam.size:
        low, high = evaluate.clopper_pearson(caught, int(spam.size))
        out["recall"] = round(caught / spam.size, 5)
        out["recall_ci95"] = [round(low, 5), round(high, 5)]
    if ham.size:
        out["false_positives"] = fp
        out["fp_upper95"] = round(evaluate.upper_bound(fp, int(ham.size)), 6)
    if ham.size and spam.size:
        from sklearn.metrics import roc_auc_score

        out["auc"] = round(float(roc_auc_score(labels, scores)), 6)
        out["own_recall_at_fpr"] = {
            f"{t:g}": round(evaluate.recall_at_fpr(ham, spam, t), 5) for t in TARGETS
        }
    return out


def report(
    labels: np.ndarray,
    scores: np.ndarray,
    corpora: Sequence[str],
    languages: Sequence[str] | None = None,
    max_fpr: float = 0.0001,
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The pooled report: threshold from all out-of-fold ham, then every group at it."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    ham = scores[labels == 0]
    threshold = evaluate.threshold_for_fpr(ham, max_fpr)
    out: dict[str, Any] = {
        "threshold": threshold,
        "max_fpr": max_fpr,
        "interval_method": "clopper-pearson (exact, two-sided 95%)",
        "pooled": summary(labels, scores, threshold),
        "recall_at_fpr": {
            f"{t:g}": round(evaluate.recall_at_fpr(ham, scores[labels == 1], t), 5) for t in TARGETS
        },
    }
    out["pooled"]["note"] = (
        "the threshold was chosen on these ham: the false-positive count is fitted "
        f"(at most {max_fpr:g} of them), the spam recall is a fair estimate"
    )
    by = {"per_corpus": np.asarray(corpora, dtype=object)}
    if languages is not None:
        by["per_language"] = np.asarray(languages, dtype=object)
    if groups is not None:
        by["per_score_group"] = np.asarray(groups, dtype=object)
    for key, values in by.items():
        out[key] = {
            str(name): summary(labels[values == name], scores[values == name], threshold)
            for name in sorted(set(values.tolist()))
        }
    return out


def hardest(labels: np.ndarray, scores: np.ndarray, count: int = 10) -> dict[str, list[int]]:
    """Row indices of the highest-scoring ham and the lowest-scoring spam."""
    labels = np.asarray(labels)
    rows = np.arange(labels.size)
    ham, spam = rows[labels == 0], rows[labels == 1]
    return {
        "ham": ham[np.argsort(-scores[ham])][:count].tolist(),
        "spam": spam[np.argsort(scores[spam])][:count].tolist(),
    }
