"""Metrics that say how sure we are: rates with exact intervals, thresholds, recall at FPR.

The claim users sign is "at most 0.01% of legitimate mail misjudged". Zero false
positives out of 5,000 ham does not show that: the one-sided 95% upper bound is then
about 3/5,000 = 0.06%. Every rate here therefore comes with its count and a
Clopper-Pearson (exact binomial) interval (gateway.stats, shared with the
service report), and `support_note` says in words when the ham count is too small
for the claim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from gateway.stats import clopper_pearson, needed_without_error, upper_bound


def support_note(false_positives: int, ham: int, target: float) -> str | None:
    """A sentence when the ham count cannot support 'FPR <= target', else None."""
    bound = upper_bound(false_positives, ham)
    if bound <= target:
        return None
    return (
        f"not enough ham to support the claim FPR <= {target:g}: {false_positives} false "
        f"positives in {ham} ham give a one-sided 95% upper bound of {bound:.3g}; "
        f"the claim needs at least {needed_without_error(target)} ham with no false positive"
    )


def threshold_for_fpr(ham_scores: Sequence[float] | np.ndarray, max_fpr: float) -> float:
    """The lowest score threshold whose false-positive rate on these ham is <= max_fpr.

    A message is judged spam when score >= threshold. With k = floor(max_fpr * n)
    allowed false positives, the threshold sits just above the (k+1)-th highest ham
    score; when n * max_fpr < 1 that is just above the highest ham score.
    """
    scores = np.sort(np.asarray(ham_scores, dtype=np.float64))[::-1]
    if scores.size == 0:
        raise ValueError("no ham to choose a threshold on")
    allowed = math.floor(max_fpr * scores.size + 1e-9)
    if allowed >= scores.size:
        return float(scores[-1])
    return float(np.nextafter(scores[allowed], np.inf))


def recall_at_fpr(ham_scores: np.ndarray, spam_scores: np.ndarray, max_fpr: float) -> float:
    """Share of spam caught at the threshold that keeps ham FPR <= max_fpr."""
    if len(ham_scores) == 0 or len(spam_scores) == 0:
        return float("nan")
    t = threshold_for_fpr(ham_scores, max_fpr)
    return float(np.mean(np.asarray(spam_scores) >= t))


def counts(labels: np.ndarray, judged_spam: np.ndarray) -> dict[str, Any]:
    """Confusion counts and rates with intervals from yes/no verdicts (spam = 1)."""
    labels = np.asarray(labels)
    judged = np.asarray(judged_spam, dtype=bool)
    n_ham, n_spam = int(np.sum(labels == 0)), int(np.sum(labels == 1))
    fp = int(np.sum(judged & (labels == 0)))
    fn = int(np.sum(~judged & (labels == 1)))
    caught = n_spam - fn
    return {
        "false_positives": fp,
        "false_negatives": fn,
        "spam_recall": caught / n_spam if n_spam else None,
        "spam_recall_ci95": list(clopper_pearson(caught, n_spam)) if n_spam else None,
        "fp_rate": fp / n_ham if n_ham else None,
        "fp_rate_ci95": list(clopper_pearson(fp, n_ham)) if n_ham else None,
        "fp_rate_upper95": upper_bound(fp, n_ham) if n_ham else None,
    }


def metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    targets: Sequence[float] = (0.001, 0.0001),
    max_fpr: float = 0.0001,
) -> dict[str, Any]:
    """The evaluation report for one set of labelled scores (spam = 1)."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    ham_scores, spam_scores = scores[labels == 0], scores[labels == 1]
    n_ham, n_spam = int(ham_scores.size), int(spam_scores.size)
    out: dict[str, Any] = {
        "ham": n_ham,
        "spam": n_spam,
        **counts(labels, scores >= threshold),
        "auc": float(roc_auc_score(labels, scores)) if n_ham and n_spam else None,
        "recall_at_fpr": {
            f"{t:g}": (recall_at_fpr(ham_scores, spam_scores, t) if n_ham and n_spam else None)
            for t in targets
        },
        "interval_method": "clopper-pearson",
    }
    notes = []
    if n_ham:
        note = support_note(out["false_positives"], n_ham, max_fpr)
        if note:
            notes.append(note)
    else:
        notes.append("no ham in this corpus: the false-positive rate is not measured")
    if not n_spam:
        notes.append("no spam in this corpus: spam recall is not measured")
    out["notes"] = notes
    return out
