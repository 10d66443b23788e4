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


def test_headerless_mail_keeps_its_body_in_the_raw_view():
    from training.features3 import raw_view

    enron = b"Subject: mcmullen gas for 11 / 99\njackie ,\nsince the inlet\n\nmore\n"
    assert raw_view(enron) == b"Subject: mcmullen gas for 00 / 00\n\nmore\n"  # body lost
    fixed = stacking.body_after_subject(enron)
    assert fixed == b"Subject: mcmullen gas for 11 / 99\n\njackie ,\nsince the inlet\n\nmore\n"
    assert b"jackie" in raw_view(fixed)


def test_mail_with_a_header_block_is_left_as_it_is():
    for raw in (
        b"From: a@example.com\nSubject: hi\n\nbody\n",
        b"Subject: folded\n  on two lines\nFrom: a@b\n\nbody\n",
        b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n",
        b"Subject: only a subject",
    ):
        assert stacking.body_after_subject(raw) == raw


def test_the_mbox_envelope_line_is_not_the_body():
    raw = b"From x@y Mon Jan 1 2000\nSubject: s\nbody\n"
    assert stacking.body_after_subject(raw) == b"From x@y Mon Jan 1 2000\nSubject: s\n\nbody\n"
