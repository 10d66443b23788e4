"""Second stages and per-group models over pooled 5-fold cross-validation (fifth and
sixth rounds).

    .venv/bin/python bench/classifier_stacking.py --cache DIR [--corpora DIR]
        [--step cache|bases|meta|variants|groups|tune|all
               |views|tune6|markov|lpart|fuse|fuse-flat|rfix] [--folds 1|2] [--only ...]
        [--part N]

Every step reuses what the previous ones left in --cache (a scratch folder outside the
repository: about 600 MB), so each experiment is a fit on the same cached matrices and
the same folds:

- cache: the corpora in the training command's order, deduplicated as `mailwarden
  train` does, featurized once (mw-features-3); each block (W words, C character
  4-grams, E `x.` tokens, R raw byte 4-grams) saved apart, normalised on its own, with
  labels, corpora, score groups, languages and folds (sha256("mailwarden-fold-1" +
  fingerprint), as `train`).
- bases: base models, each with nested out-of-fold scores: `single` (fitted without
  fold k, scores fold k) and, for the second stage, `p<k>` (for every fold j != k, fold
  j scored by a model fitted without folds j and k: scores a meta model for outer fold
  k may learn from, from models that never saw fold k). 15 fits a base model.
- meta: logistic regression and HistGradientBoosting over the base scores, with and
  without the facts (group flags, log of each block's distinct features, language
  en/zh/unknown) and score x group-flag interactions; each with and without group
  offsets (training.groups).
- variants: which facts and which bases the second stage needs.
- groups: the shipped recipe fitted on each score group's own rows, and each group's
  recall at its own 0.01% / 0.1% points.
- tune: alpha, loss and ham weight of the shipped recipe.

Sixth round (`all` does not include these; run them by name):

- views: the raw view of every cached message (training.features3.raw_view: content
  headers and the body as sent, digits as 0, the first 3,000 bytes), read again from
  the corpora and matched to the cache by the message's sha256; DIR/views.npz.
- tune6: the shipped recipe with alpha 1e-6, hinge loss, ham weight 20, 30 epochs, and
  without idf on the R block (idf 1 on its columns); 5 fits each, one threshold and with
  group offsets. `--folds 2` also runs the shipped recipe itself on those folds
  (without nesting: DIR/scores-f2/L_shippedrecipe.npz). `--only 'hinge,alpha 1e-6'`:
  just those settings (to run them in separate processes).
- markov: a Bratko-style base (bench/char_markov.py: a hashed byte Markov model of
  orders 0..5 per class over the raw view, a message's score its mean log-likelihood
  ratio per byte), out-of-fold scores alone (orders up to 4 and 5); `fuse` adds the
  nested ones (DIR/scores/M5n.npz).
- lpart --part 0|1|2: a third of the shipped recipe's 15 nested fits (DIR/scores/L.npz
  as `bases` makes it), so three processes can share them; merged when all three exist.
- fuse: the shipped recipe and the Markov base (order 5) fused by the nested second
  stages of `meta` (logistic, scores only; logistic with the facts and score x group;
  HistGradientBoosting with the facts), each with and without group offsets.
  fuse-flat: the same without nesting (the stage for fold k learns from the other
  folds' ordinary out-of-fold scores; needs only the 5 single fits).
- rfix: the shipped recipe with the R block rebuilt from the corpora after
  body_after_subject (a blank line before the first line of the header block that is
  neither a header nor a continuation: features3.raw_view otherwise drops the body of
  headerless mail such as Enron's up to its first blank line); 5 fits.
- `--folds 2`: a second, fresh set of folds, sha256("mailwarden-fold-2" + the message's
  sha256 as hex) as training.train.fold_of (near-duplicates were already dropped, so
  the message hash serves); base scores in DIR/scores-f2, results labelled "[folds 2]".

Prints one JSON line per setting (pooled recall at 0.01% with its Clopper-Pearson
interval, recall at 0.1%, AUC, per corpus at the pooled 0.01% point and the ham of each
corpus above it) and appends it to DIR/results.jsonl.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import char_markov
from classifier_cv import corpus_paths

from gateway.paths import corpora_dir
from training import dataset, evaluate
from training.corpus import parse_spec
from training.features import CHAR_FEATURES, EXTRA_FEATURES, N_FEATURES, normalize_rows
from training.features3 import _HEADER_LINE
from training.model import SpamModel
from training.train import (
    TrainOptions,
    _model_metadata,
    fit,
    fold_of,
    group_offsets,
    inverse_document_frequency,
    make_estimator,
    offsets_of,
)

SHIPPED = {"W": 1.0, "C": 0.45, "E": 0.5, "R": 0.5}
CORPORA = ("spamassassin", "csdmc2010", "trec07p", "enron_spam", "trec06c_subset", "phishing_pot")
FLAGS = ("cjk", "headerless")


FOLD2_SALT = b"mailwarden-fold-2"


def fresh_folds(shas: Sequence[str], folds: int = 5) -> np.ndarray:
    """The second set of folds: from each message's sha256 (hex) with another salt."""
    buckets = [dataset.split_bucket(sha.encode(), FOLD2_SALT) for sha in shas]
    return np.asarray(buckets, dtype=np.int64) * folds // 100


class Cache:
    def __init__(self, directory: Path, fold_set: int = 1) -> None:
        self.dir = directory
        self.fold_set = fold_set
        self.scores_dir = directory / ("scores" if fold_set == 1 else f"scores-f{fold_set}")
        self.scores_dir.mkdir(parents=True, exist_ok=True)
        meta = np.load(directory / "meta.npz")
        self.y = meta["y"].astype(np.int8)
        self.corpus, self.group = meta["corpus"], meta["group"]
        self.language, self.folds = meta["language"], meta["folds"]
        self.sha = meta["sha"]
        if fold_set == 2:
            self.folds = fresh_folds(self.sha.tolist())
        self._blocks: dict[str, sp.csr_matrix] = {}

    def block(self, name: str) -> sp.csr_matrix:
        if name not in self._blocks:
            self._blocks[name] = sp.load_npz(self.dir / f"{name}.npz").tocsr()
        return self._blocks[name]

    def combo(self, weights: dict[str, float]) -> sp.csr_matrix:
        """Blocks weighted side by side, rows normalised again (features.vectorize); an
        empty word block keeps word_feature_counts' column layout."""
        parts = []
        for name in "WCER":
            weight = weights.get(name, 0.0)
            b = self.block(name)
            if weight:
                b = b.copy()
                b.data *= np.float32(weight)
            elif name == "W":
                b = sp.csr_matrix(b.shape, dtype=np.float32)
            else:
                continue
            parts.append(b)
        return normalize_rows(sp.hstack(parts, format="csr", dtype=np.float32))

    def log(self, row: dict[str, Any]) -> None:
        if self.fold_set != 1 and "label" in row:
            row["label"] = f"[folds {self.fold_set}] " + row["label"]
        with open(self.dir / "results.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def build_cache(directory: Path, corpora: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    paths = corpus_paths(corpora)
    data = dataset.load([parse_spec(str(p)) for p in paths], jobs=2)
    rows = dataset.split(data, percent=0).train
    X = data.X[rows]
    bounds = np.cumsum([0, N_FEATURES, CHAR_FEATURES, EXTRA_FEATURES, 2**20])
    for name, low, high in zip("WCER", bounds[:-1], bounds[1:], strict=True):
        block = normalize_rows(sp.csr_matrix(X[:, low:high], dtype=np.float32))
        sp.save_npz(directory / f"{name}.npz", block, compressed=False)
    np.savez(
        directory / "meta.npz",
        y=data.y[rows],
        corpus=np.asarray(data.corpus[rows], dtype=str),
        group=np.asarray([data.groups[r] for r in rows], dtype=str),
        language=np.asarray([data.languages[r] for r in rows], dtype=str),
        folds=fold_of([data.fingerprint[r] for r in rows], 5),
        sha=np.asarray([data.sha256[r] for r in rows], dtype=str),
    )


def fit_linear(
    c: Cache,
    X: sp.csr_matrix,
    rows: np.ndarray,
    options: TrainOptions,
    no_idf_from: int | None = None,
) -> SpamModel:
    """The shipped recipe on `rows` (no_idf_from: idf 1 from that column on)."""
    idf = inverse_document_frequency(X[rows]) if options.idf else None
    if idf is not None and no_idf_from is not None:
        idf[no_idf_from:] = 1.0
    model = SpamModel(make_estimator(options), _model_metadata(options), idf)
    fit(model.estimator, model.transform(X[rows]), c.y[rows], options.epochs, options.seed)
    return model


def scorer(
    c: Cache,
    X: sp.csr_matrix,
    rows: np.ndarray,
    options: TrainOptions | None,
    no_idf_from: int | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """A model fitted on `rows` (options None: multinomial NB), as a scorer of a row mask."""
    if options is not None:
        model = fit_linear(c, X, rows, options, no_idf_from)
        return lambda mask: model.decision(X[mask])
    from sklearn.naive_bayes import MultinomialNB

    est = MultinomialNB(alpha=1.0).fit(X[rows], c.y[rows])

    def score(mask: np.ndarray) -> np.ndarray:
        jll = est.predict_joint_log_proba(X[mask])
        return np.asarray(jll[:, 1] - jll[:, 0], dtype=np.float64)

    return score


def base_scores(
    c: Cache,
    name: str,
    X: sp.csr_matrix | None,
    options: TrainOptions | None = None,
    nested: bool = True,
    no_idf_from: int | None = None,
    part: int | None = None,
) -> dict[str, np.ndarray]:
    """A base model's out-of-fold scores (cached in DIR/scores/NAME.npz). `part` 0, 1, 2:
    only a third of the 15 nested fits (the singles, then half the pairs each), saved
    as NAME.part<N>.npz; when all three exist they are merged into NAME.npz."""
    path = c.scores_dir / f"{name}.npz"
    if path.exists():
        return dict(np.load(path))
    parts = [c.scores_dir / f"{name}.part{k}.npz" for k in range(3)]
    if all(p.exists() for p in parts):
        merged: dict[str, np.ndarray] = {}
        for p in parts:
            for key, value in np.load(p).items():
                if key in merged:
                    merged[key] = np.where(np.isnan(merged[key]), value, merged[key])
                else:
                    merged[key] = value
        np.savez(path, **merged)
        return merged
    assert X is not None
    out = {"single": np.zeros(c.y.size)} if part in (None, 0) else {}
    held_sets: list[tuple[int, ...]] = [(k,) for k in range(5)]
    if nested:
        held_sets += list(combinations(range(5), 2))
    if part is not None:
        held_sets = held_sets[5 * part : 5 * part + 5]
        path = parts[part]
    for held in held_sets:
        score = scorer(c, X, ~np.isin(c.folds, held), options, no_idf_from)
        if len(held) == 1:
            mask = c.folds == held[0]
            out["single"][mask] = score(mask)
            continue
        for scored, outer in (held, held[::-1]):
            out.setdefault(f"p{outer}", np.full(c.y.size, np.nan))
            mask = c.folds == scored
            out[f"p{outer}"][mask] = score(mask)
    np.savez(path, **out)
    return out


def summary(c: Cache, scores: np.ndarray, label: str, offsets: bool = False) -> dict[str, Any]:
    s = np.asarray(scores, dtype=np.float64).copy()
    offs: dict[str, float] = {}
    if offsets:
        offs = group_offsets(s, c.y, c.group, 0.0001)
        s += offsets_of(offs, c.group)
    ham, spam = s[c.y == 0], s[c.y == 1]
    t = evaluate.threshold_for_fpr(ham, 0.0001)
    caught = int((spam >= t).sum())
    low, high = evaluate.clopper_pearson(caught, spam.size)
    row: dict[str, Any] = {
        "label": label + (" + group offsets" if offsets else ""),
        "recall_0.01%": round(100 * caught / spam.size, 2),
        "ci95": [round(100 * low, 1), round(100 * high, 1)],
        "recall_0.1%": round(100 * evaluate.recall_at_fpr(ham, spam, 0.001), 2),
        "auc": round(float(roc_auc_score(c.y, s)), 6),
        "group_offsets": {k: round(v, 3) for k, v in offs.items()},
    }
    for name in CORPORA:
        m = c.corpus == name
        row[name] = round(100 * float((s[m & (c.y == 1)] >= t).mean()), 1)
        row[name + "_ham_above"] = int((s[m & (c.y == 0)] >= t).sum())
    c.log(row)
    return row


def facts(c: Cache) -> np.ndarray:
    cols = [(c.group == g).astype(float) for g in FLAGS]
    cols += [np.log1p(np.diff(c.block(n).indptr)) for n in "WCER"]
    cols += [(c.language == lang).astype(float) for lang in ("en", "zh", "unknown")]
    return np.column_stack(cols)


def design(
    c: Cache,
    scores: list[np.ndarray],
    use_facts: bool,
    interactions: bool,
    columns: list[int] | None = None,
) -> np.ndarray:
    """Base scores, then the facts (columns: which of facts()' nine; None: all), then each
    score times each group flag."""
    cols = list(scores)
    if use_facts:
        f = facts(c) if columns is None else facts(c)[:, columns]
        cols += list(f.T)
        if interactions:
            cols += [s * f[:, j] for s in scores for j in range(len(FLAGS))]
    return np.column_stack(cols)


def meta_model(kind: str, ham_weight: float) -> Any:
    if kind == "lr":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(
            StandardScaler(),
            LogisticRegression(class_weight={0: ham_weight, 1: 1.0}, max_iter=2000),
        )
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        class_weight={0: ham_weight, 1: 1.0},
        random_state=0,
    )


def stacked(
    c: Cache,
    bases: list[dict[str, np.ndarray]],
    kind: str,
    ham_weight: float,
    use_facts: bool,
    interactions: bool,
    nested: bool = True,
    columns: list[int] | None = None,
) -> np.ndarray:
    """Meta-model out-of-fold scores (outer fold k: fitted on the other folds' inner
    out-of-fold base scores when nested, applied to fold k's ordinary ones)."""
    single = design(c, [b["single"] for b in bases], use_facts, interactions, columns)
    out = np.zeros(c.y.size)
    for k in range(5):
        held = c.folds == k
        if nested:
            inner = [b[f"p{k}"] for b in bases]
            Z = design(c, inner, use_facts, interactions, columns)
        else:
            Z = single
        est = meta_model(kind, ham_weight).fit(Z[~held], c.y[~held])
        if hasattr(est, "decision_function"):
            out[held] = est.decision_function(single[held])
        else:
            p = np.clip(est.predict_proba(single[held])[:, 1], 1e-15, 1 - 1e-15)
            out[held] = np.log(p) - np.log1p(-p)
    return out


def step_bases(c: Cache) -> None:
    shipped = base_scores(c, "L", c.combo(SHIPPED), TrainOptions())["single"]
    summary(c, shipped, "shipped recipe W1+C.45+E.5+R.5")
    summary(c, shipped, "shipped recipe W1+C.45+E.5+R.5", offsets=True)
    e = base_scores(c, "E", c.combo({"E": 1.0}), TrainOptions(short_message_features=0))
    summary(c, e["single"], "E alone (x. tokens, SGD, idf)")
    raw = TrainOptions(short_message_features=0, idf=False)
    r = base_scores(c, "R", c.combo({"R": 1.0}), raw)
    summary(c, r["single"], "R alone (byte 4-grams, binary, no idf)")
    words = c.block("W").copy()
    words.data[:] = 1.0
    nb = base_scores(c, "NBbin_nested", words, None)
    summary(c, nb["single"], "multinomial NB on binary word features, alpha 1")


def step_meta(c: Cache) -> None:
    bases = [base_scores(c, n, None) for n in ("L", "E", "R", "NBbin_nested")]
    for kind in ("lr", "hgb"):
        for ham_weight in (1.0, 10.0):
            for use_facts, inter in ((False, False), (True, False), (True, True)):
                if kind == "hgb" and inter:
                    continue
                s = stacked(c, bases, kind, ham_weight, use_facts, inter)
                label = f"{kind} ham weight {ham_weight:g} facts {use_facts} interactions {inter}"
                summary(c, s, label)
                summary(c, s, label, offsets=True)


def step_variants(c: Cache) -> None:
    """Which facts and which bases the second stage needs (facts: 0-1 group flags, 2-5
    log distinct features of W, C, E, R, 6-8 language en/zh/unknown)."""
    main = [base_scores(c, "L", None)]
    facts_of = {
        "flags only": [0, 1],
        "flags + block sizes": [0, 1, 2, 3, 4, 5],
        "flags + W size": [0, 1, 2],
        "flags + W, R sizes": [0, 1, 2, 5],
        "all facts": list(range(9)),
    }
    for name, columns in facts_of.items():
        for nested in (True, False):
            s = stacked(c, main, "lr", 1.0, True, True, nested, columns)
            summary(c, s, f"lr [L] {name}, interactions, nested {nested}", offsets=True)
    without_language = list(range(6))
    for names in (["L", "E", "R", "NBbin_nested"], ["L", "E", "R"], ["L", "E"], ["L"]):
        bases = [base_scores(c, n, None) for n in names]
        s = stacked(c, bases, "hgb", 1.0, True, False, True, without_language)
        summary(c, s, f"hgb [{'+'.join(names)}] facts without language, nested")
    for names in (["L", "E"], ["L"]):
        bases = [base_scores(c, n, None) for n in names]
        s = stacked(c, bases, "lr", 1.0, True, True)
        summary(c, s, f"lr [{'+'.join(names)}] all facts, interactions, nested")
        summary(c, s, f"lr [{'+'.join(names)}] all facts, interactions, nested", offsets=True)


def step_groups(c: Cache) -> None:
    X = c.combo(SHIPPED)
    out = np.zeros(c.y.size)
    for g in ("headerless", "cjk", "other"):
        rows = c.group == g
        for k in range(5):
            model = fit_linear(c, X, rows & (c.folds != k), TrainOptions())
            held = rows & (c.folds == k)
            out[held] = model.decision(X[held])
    summary(c, out, "shipped recipe fitted per score group")
    summary(c, out, "shipped recipe fitted per score group", offsets=True)
    shipped = base_scores(c, "L", None)["single"]
    for g in ("headerless", "cjk", "other"):
        m = c.group == g
        for label, s in (("shipped recipe", shipped), ("fitted on the group", out)):
            ham, spam = s[m & (c.y == 0)], s[m & (c.y == 1)]
            row = {
                "group": g,
                "model": label,
                "own_recall_0.01%": round(100 * evaluate.recall_at_fpr(ham, spam, 0.0001), 2),
                "own_recall_0.1%": round(100 * evaluate.recall_at_fpr(ham, spam, 0.001), 2),
            }
            c.log(row)


def step_tune(c: Cache) -> None:
    X = c.combo(SHIPPED)
    configs = {
        "alpha 1e-5": TrainOptions(alpha=1e-5),
        "modified_huber": TrainOptions(loss="modified_huber"),
        "alpha 1e-6": TrainOptions(alpha=1e-6),
    }
    for label, options in configs.items():
        name = "L_" + label.replace(" ", "")
        s = base_scores(c, name, X, options, nested=False)["single"]
        summary(c, s, label)
        summary(c, s, label, offsets=True)


# -- sixth round ----------------------------------------------------------------------------


def step_views(c: Cache, corpora: Path) -> None:
    """DIR/views.npz: every cached message's raw view, in the cache's order."""
    from training.corpus import read_corpus
    from training.features3 import raw_view

    row_of = {sha: i for i, sha in enumerate(c.sha.tolist())}
    views: list[bytes | None] = [None] * len(row_of)
    for path in corpus_paths(corpora):
        for message in read_corpus(parse_spec(str(path))):
            row = row_of.get(hashlib.sha256(message.raw).hexdigest())
            if row is not None and views[row] is None:
                views[row] = raw_view(message.raw)
    missing = sum(v is None for v in views)
    if missing:
        raise SystemExit(f"views: {missing} cached messages not found in {corpora}")
    done = [v or b"" for v in views]
    lengths = np.fromiter((len(v) for v in done), dtype=np.int64, count=len(done))
    np.savez(
        c.dir / "views.npz",
        data=np.frombuffer(b"".join(done), dtype=np.uint8),
        offsets=np.r_[0, np.cumsum(lengths)],
    )


def load_views(c: Cache) -> list[bytes]:
    saved = np.load(c.dir / "views.npz")
    data, offsets = saved["data"].tobytes(), saved["offsets"]
    return [data[a:b] for a, b in pairwise(offsets)]


def step_tune6(c: Cache, only: Sequence[str] = ()) -> None:
    X = c.combo(SHIPPED)
    r_from = N_FEATURES + CHAR_FEATURES + EXTRA_FEATURES
    configs: dict[str, tuple[TrainOptions, int | None]] = {
        "alpha 1e-6": (TrainOptions(alpha=1e-6), None),
        "hinge": (TrainOptions(loss="hinge"), None),
        "ham weight 20": (TrainOptions(ham_weight=20.0), None),
        "30 epochs": (TrainOptions(epochs=30), None),
        "no idf on R": (TrainOptions(), r_from),
    }
    if c.fold_set != 1:
        configs = {"shipped recipe": (TrainOptions(), None), **configs}
    if only:
        configs = {label: configs[label] for label in only}
    for label, (options, no_idf_from) in configs.items():
        name = "L_" + label.replace(" ", "")
        s = base_scores(c, name, X, options, nested=False, no_idf_from=no_idf_from)
        summary(c, s["single"], label)
        summary(c, s["single"], label, offsets=True)


def markov_scores(
    c: Cache, orders: Sequence[int] = (4, 5), beta: float = 2.0, nested: bool = False
) -> None:
    """Out-of-fold scores of the byte Markov base (as base_scores' `single`, and with
    `nested` its `p<k>` too), one file per order: DIR/scores/M<order>.npz (nested:
    M<order>n.npz). Counts add up, so the model without folds H is the whole count
    minus H's folds' tables."""
    paths = {o: c.scores_dir / f"M{o}{'n' if nested else ''}.npz" for o in orders}
    if all(p.exists() for p in paths.values()):
        return
    views = load_views(c)
    by_fold = [np.flatnonzero(c.folds == f) for f in range(5)]
    tables: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}
    for f, rows in enumerate(by_fold):
        values, owner = char_markov.pack([views[r] for r in rows])
        cells = char_markov.codes(values)
        label = c.y[rows][owner[char_markov.real_positions(values)]]
        for cls in (0, 1):
            tables[f, cls] = char_markov.count(cells, label == cls)
        del cells

    total = {
        cls: [
            (
                np.sum([tables[f, cls][o][0] for f in range(5)], axis=0),
                np.sum([tables[f, cls][o][1] for f in range(5)], axis=0),
            )
            for o in range(char_markov.ORDER + 1)
        ]
        for cls in (0, 1)
    }

    def without(held: tuple[int, ...], cls: int) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for o in range(char_markov.ORDER + 1):
            pair, ctx = total[cls][o][0].copy(), total[cls][o][1].copy()
            for h in held:
                pair -= tables[h, cls][o][0]
                ctx -= tables[h, cls][o][1]
            out.append((pair, ctx))
        return out

    out = {o: {"single": np.zeros(c.y.size)} for o in orders}
    for f, rows in enumerate(by_fold):
        values, owner = char_markov.pack([views[r] for r in rows])
        cells = char_markov.codes(values)
        real_owner = owner[char_markov.real_positions(values)]
        others = [(f, j) for j in range(5) if j != f] if nested else []
        for held in [(f,), *others]:
            spam = char_markov.log_probs(cells, without(held, 1), beta)
            ham = char_markov.log_probs(cells, without(held, 0), beta)
            for o in orders:
                llr = spam[o] - ham[o]
                means = char_markov.message_means(llr, real_owner, rows.size)
                key = "single" if len(held) == 1 else f"p{held[1]}"
                out[o].setdefault(key, np.full(c.y.size, np.nan))[rows] = means
    for o in orders:
        np.savez(paths[o], **out[o])


def step_markov(c: Cache) -> None:
    markov_scores(c)
    for o in (4, 5):
        m = base_scores(c, f"M{o}", None)
        summary(c, m["single"], f"byte Markov order {o} alone")
        summary(c, m["single"], f"byte Markov order {o} alone", offsets=True)


def step_lpart(c: Cache, part: int) -> None:
    """A third of the shipped recipe's 15 nested fits (to run in three processes)."""
    base_scores(c, "L", c.combo(SHIPPED), TrainOptions(), part=part)


def step_fuse(c: Cache, nested: bool = True) -> None:
    """The shipped recipe fused with the Markov base by the second stages of `meta`."""
    singles = c.scores_dir / "L.part0.npz"  # lpart 0: the 5 single fits
    if not nested and singles.exists() and not (c.scores_dir / "L.npz").exists():
        shipped = dict(np.load(singles))
    else:
        shipped = base_scores(c, "L", None if nested else c.combo(SHIPPED), TrainOptions(), nested)
    summary(c, shipped["single"], "shipped recipe W1+C.45+E.5+R.5")
    summary(c, shipped["single"], "shipped recipe W1+C.45+E.5+R.5", offsets=True)
    markov_scores(c, nested=nested)
    bases = [shipped, base_scores(c, "M5n" if nested else "M5", None)]
    for kind, use_facts, inter in (("lr", False, False), ("lr", True, True), ("hgb", True, False)):
        s = stacked(c, bases, kind, 1.0, use_facts, inter, nested)
        label = f"{kind} [shipped recipe + Markov 5] facts {use_facts} interactions {inter}"
        summary(c, s, f"{label}, nested {nested}")
        summary(c, s, f"{label}, nested {nested}", offsets=True)


def body_after_subject(raw: bytes) -> bytes:
    """The message with a blank line put before the first line of its header block that
    is neither a header nor a continuation (headerless mail such as the Enron corpus'
    "Subject: ..." then the body at once); other messages unchanged. features3's raw
    view reads its header block up to the first blank line and keeps only content
    headers, so without this the body of such mail up to its first blank line is lost."""
    envelope = b""
    if raw.startswith(b"From "):
        envelope, _, raw = raw.partition(b"\n")
        envelope += b"\n"
    end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[:end]
    at = 0
    for line in head.split(b"\n"):
        if not line.rstrip(b"\r"):  # CRLF mail's blank line: the header block ends
            break
        if at and line[:1] not in (b" ", b"\t") and not _HEADER_LINE.match(line):
            return envelope + raw[:at] + b"\n" + raw[at:]
        at += len(line) + 1
    return envelope + raw


def step_rfix(c: Cache, corpora: Path) -> None:
    """The shipped recipe with the R block built from body_after_subject's message (the
    raw view then holds the body of headerless mail too); 5 fits, same folds."""
    from training.corpus import read_corpus
    from training.features3 import raw_grams

    name = "L_rfix"
    if not (c.scores_dir / f"{name}.npz").exists():
        row_of = {sha: i for i, sha in enumerate(c.sha.tolist())}
        grams: list[np.ndarray | None] = [None] * len(row_of)
        for path in corpus_paths(corpora):
            for message in read_corpus(parse_spec(str(path))):
                row = row_of.get(hashlib.sha256(message.raw).hexdigest())
                if row is not None and grams[row] is None:
                    grams[row] = raw_grams(body_after_subject(message.raw))
        done = [g if g is not None else np.zeros(0, dtype=np.int32) for g in grams]
        indptr = np.r_[0, np.cumsum([g.size for g in done])]
        R = sp.csr_matrix(
            (np.ones(indptr[-1], dtype=np.float32), np.concatenate(done), indptr),
            shape=(len(done), 2**20),
        )
        c._blocks["R"] = normalize_rows(R)
    X = c.combo(SHIPPED)
    s = base_scores(c, name, X, TrainOptions(), nested=False)["single"]
    summary(c, s, "shipped recipe, R view with the body of headerless mail")
    summary(c, s, "shipped recipe, R view with the body of headerless mail", offsets=True)


STEPS: dict[str, Callable[[Cache], None]] = {
    "bases": step_bases,
    "meta": step_meta,
    "variants": step_variants,
    "groups": step_groups,
    "tune": step_tune,
}
ROUND6: dict[str, Callable[[Cache], None]] = {
    "tune6": step_tune6,
    "markov": step_markov,
    "fuse": step_fuse,
    "fuse-flat": lambda c: step_fuse(c, nested=False),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--corpora", type=Path, default=corpora_dir())
    parser.add_argument("--step", default="all")
    parser.add_argument("--folds", type=int, choices=(1, 2), default=1)
    parser.add_argument("--part", type=int, choices=(0, 1, 2), default=0, help="lpart")
    parser.add_argument(
        "--only", default="", help="tune6: comma-separated settings (e.g. 'hinge,alpha 1e-6')"
    )
    args = parser.parse_args()
    known = (*STEPS, *ROUND6, "views", "rfix", "lpart", "all", "cache")
    if args.step not in known:
        parser.error(f"--step: one of {', '.join(known)}")
    steps = list(STEPS) if args.step == "all" else [args.step]
    if not (args.cache / "meta.npz").exists():
        build_cache(args.cache, args.corpora)
    c = Cache(args.cache, args.folds)
    for step in steps:
        if step == "views":
            step_views(c, args.corpora)
        elif step == "rfix":
            step_rfix(c, args.corpora)
        elif step == "lpart":
            step_lpart(c, args.part)
        elif step == "tune6":
            step_tune6(c, [o.strip() for o in args.only.split(",") if o.strip()])
        elif step != "cache":
            {**STEPS, **ROUND6}[step](c)
    return 0


if __name__ == "__main__":
    sys.exit(main())
