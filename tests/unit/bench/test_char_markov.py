"""The byte Markov base of bench/classifier_stacking.py (sixth round): packing, the
blended probabilities, and that the per-class likelihood ratio tells the classes apart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[3] / "bench" / "char_markov.py"
_SPEC = importlib.util.spec_from_file_location("char_markov", _PATH)
assert _SPEC and _SPEC.loader
cm = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cm)


def test_pack_pads_every_message_and_marks_its_bytes():
    values, owner = cm.pack([b"ab", b"", b"xyz"], order=2)
    start = cm.START
    assert values.tolist() == [start, start, 97, 98, start, start, start, start, 120, 121, 122]
    assert owner.tolist() == [-1, -1, 0, 0, -1, -1, -1, -1, 2, 2, 2]
    assert cm.real_positions(values, 2).tolist() == [2, 3, 8, 9, 10]


def test_contexts_do_not_cross_messages():
    # "b" after "a" in the first message; the second starts with "b" after the padding
    values, _ = cm.pack([b"ab", b"b"], order=1)
    cells = cm.codes(values, order=1)
    pair1 = cells[1][0]
    assert pair1[1] != pair1[2]  # (a, b) and (START, b) are different cells
    assert cells[0][0][1] == cells[0][0][2]  # order 0: the same byte, the same cell


def test_blended_probabilities_sum_to_one_over_the_next_byte():
    train = [b"hello world, hello there", b"help me hold the hell"]
    values, _ = cm.pack(train)
    cells = cm.codes(values)
    tables = cm.count(cells, np.ones(cells[0][0].size, dtype=bool))
    for context in (b"hell", b"zzzzz", b"o wo"):
        probes = [context + bytes([x]) for x in range(256)]
        pv, po = cm.pack(probes)
        lp = cm.log_prob(cm.codes(pv), tables, beta=2.0)
        last = np.flatnonzero(np.diff(np.r_[po[cm.real_positions(pv)], -2]) != 0)
        assert np.exp(lp[last]).sum() == pytest.approx(1.0, abs=1e-9)


def test_likelihood_ratio_prefers_the_class_the_text_resembles():
    spam = [b"CHEAP PILLS buy now!!! click here for cheap pills"] * 3
    ham = [b"the meeting moved to tuesday, see the minutes attached"] * 3
    tables = {}
    for name, texts in (("spam", spam), ("ham", ham)):
        values, _ = cm.pack(texts)
        cells = cm.codes(values)
        tables[name] = cm.count(cells, np.ones(cells[0][0].size, dtype=bool))
    probes = [b"buy cheap pills now", b"minutes of the tuesday meeting", b""]
    values, owner = cm.pack(probes)
    cells = cm.codes(values)
    llr = cm.log_prob(cells, tables["spam"]) - cm.log_prob(cells, tables["ham"])
    means = cm.message_means(llr, owner[cm.real_positions(values)], len(probes))
    assert means[0] > 0 > means[1]
    assert means[2] == 0.0  # an empty view scores 0, not NaN


def test_message_means_averages_per_message():
    owner = np.array([0, 0, 2, 2, 2])
    means = cm.message_means(np.array([1.0, 3.0, 2.0, 2.0, 5.0]), owner, 3)
    assert means.tolist() == [2.0, 0.0, 3.0]
