"""The second set of folds of bench/classifier_stacking.py (sixth round)."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from training.train import fold_of

_PATH = Path(__file__).resolve().parents[3] / "bench" / "classifier_stacking.py"
_SPEC = importlib.util.spec_from_file_location("classifier_stacking", _PATH)
assert _SPEC and _SPEC.loader
stacking = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(stacking)


def test_fresh_folds_are_balanced_stable_and_unlike_the_first_set():
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5000)]
    folds = stacking.fresh_folds(shas)
    assert folds.tolist() == stacking.fresh_folds(shas).tolist()
    counts = np.bincount(folds, minlength=5)
    assert counts.size == 5 and counts.min() > 900
    first = fold_of([bytes.fromhex(s) for s in shas], 5)
    same = float((first == folds).mean())
    assert 0.15 < same < 0.25  # independent assignments agree for about a fifth
