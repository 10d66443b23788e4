"""Train a model on labelled corpora and choose its operating threshold on unseen ham.

Steps: featurize every corpus, drop exact and near duplicates, split by fingerprint
hash (training.dataset); score every training-side message with a model fitted on the
other k-1 folds of the training side and pick the threshold that keeps the false-positive
rate of those out-of-fold ham scores <= max_fpr (threshold_folds=0: of the validation
side's ham instead); fit the shipped model on the whole training side, measure it and
its threshold on the validation side, which played no part in either, and record
everything a reader needs to trust (or distrust) the figures in the model's metadata.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version as pkg_version
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, SGDClassifier

from training import crossval, dataset, evaluate
from training.corpus import CorpusSpec
from training.groups import MIN_GROUP_HAM
from training.model import SpamModel

UNSURE_FPR = 0.001  # ham above this point get CLASSIFIER_UNSURE (filters.classifier)
FOLD_SALT = b"mailwarden-fold-1"  # k-fold assignment of the training side (not the split's)


@dataclass(frozen=True)
class TrainOptions:
    max_fpr: float = 0.0001
    loss: str = "log_loss"  # with idf: the best recall at low FPR of those tried (docs)
    alpha: float = 3e-6
    ham_weight: float = 10.0  # errors on ham cost more: better recall at very low FPR
    epochs: int = 15
    validation_percent: int = dataset.VALIDATION_PERCENT
    idf: bool = True
    # rows with fewer distinct features are scaled down (training.model.shrink_short_rows)
    short_message_features: int = 30
    # k-fold out-of-fold scores over the training side choose the threshold (more ham
    # than the validation side; the validation side then measures it untouched).
    # 0 or 1: the threshold is chosen on the validation side itself (the old rule).
    threshold_folds: int = 5
    # an offset per score group (training.groups) aligning each group's own max_fpr point
    # on its out-of-fold ham with the pooled one; needs threshold_folds >= 2
    group_offsets: bool = True
    jobs: int = 1
    name: str = "mailwarden"
    seed: int = 0


def make_estimator(options: TrainOptions) -> SGDClassifier:
    """A linear model on hashed features: fast, small, and updatable with partial_fit."""
    return SGDClassifier(
        loss=options.loss,
        alpha=options.alpha,
        max_iter=options.epochs,
        tol=None,
        average=True,
        random_state=options.seed,
        class_weight={0: options.ham_weight, 1: 1.0},
    )


def _model_metadata(options: TrainOptions) -> dict[str, Any]:
    """What SpamModel.transform reads from the metadata (set before fitting)."""
    return {"name": options.name, "short_message_features": options.short_message_features}


def fit(
    estimator: SGDClassifier,
    X: Any,
    y: np.ndarray,
    epochs: int,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Epochs of partial_fit over shuffled rows, so a progress bar can follow them."""
    rng = np.random.default_rng(seed)
    classes = np.array([0, 1])
    if progress:
        progress(0)  # fitting starts
    for _ in range(epochs):
        order = rng.permutation(y.size)
        estimator.partial_fit(X[order], y[order], classes=classes)
        if progress:
            progress(1)


def inverse_document_frequency(X: Any) -> np.ndarray:
    """Smoothed idf per hashed feature (as TfidfTransformer), from the training rows."""
    df = np.bincount(X.indices, minlength=X.shape[1])
    return (np.log((1.0 + X.shape[0]) / (1.0 + df)) + 1.0).astype(np.float32)


def calibrate(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Platt scaling on unseen scores: probability = 1 / (1 + exp(-(a * score + b)))."""
    lr = LogisticRegression(C=1.0)
    lr.fit(scores.reshape(-1, 1), labels)
    return {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def _confident_point(spam_scores: np.ndarray, threshold: float) -> float:
    """The median score of the spam caught at the threshold: above it, the top grade."""
    caught = spam_scores[spam_scores >= threshold]
    if caught.size == 0:
        return threshold + 1.0
    return max(float(np.median(caught)), float(np.nextafter(threshold, np.inf)))


def library_versions() -> dict[str, str]:
    names = ("scikit-learn", "numpy", "scipy", "skops")
    out = {name: pkg_version(name) for name in names}
    out["python"] = platform.python_version()
    return out


def per_corpus(
    corpora: np.ndarray, labels: np.ndarray, scores: np.ndarray, threshold: float, max_fpr: float
) -> dict[str, Any]:
    return {
        str(name): evaluate.metrics(
            labels[corpora == name], scores[corpora == name], threshold, max_fpr=max_fpr
        )
        for name in sorted(set(corpora.tolist()))
    }


def fold_of(fingerprints: Sequence[bytes], folds: int) -> np.ndarray:
    """0..folds-1 per message, from its fingerprint (near-duplicates share a fold)."""
    buckets = [dataset.split_bucket(fp, FOLD_SALT) for fp in fingerprints]
    return np.asarray(buckets, dtype=np.int64) * folds // 100


def out_of_fold_scores(
    X: Any,
    y: np.ndarray,
    folds: np.ndarray,
    options: TrainOptions,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Each row scored by a model (idf included) fitted on the other folds only."""
    scores = np.zeros(y.size, dtype=np.float64)
    for fold in range(int(folds.max()) + 1):
        held = folds == fold
        if not held.any() or held.all():
            continue
        X_fit = X[~held]
        idf = inverse_document_frequency(X_fit) if options.idf else None
        model = SpamModel(make_estimator(options), _model_metadata(options), idf)
        fit(
            model.estimator,
            model.transform(X_fit),
            y[~held],
            options.epochs,
            options.seed,
            progress,
        )
        scores[held] = model.decision(X[held])
    return scores


def group_offsets(
    scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, max_fpr: float
) -> dict[str, float]:
    """Offset per group with >= MIN_GROUP_HAM out-of-fold ham: pooled threshold minus the
    group's own (so after adding it, the group's max_fpr point is the pooled one)."""
    ham = labels == 0
    pooled = evaluate.threshold_for_fpr(scores[ham], max_fpr)
    out = {}
    for name in sorted(set(groups.tolist())):
        rows = ham & (groups == name)
        if rows.sum() >= MIN_GROUP_HAM:
            out[str(name)] = round(pooled - evaluate.threshold_for_fpr(scores[rows], max_fpr), 6)
    return out


def offsets_of(offsets: dict[str, float], groups: np.ndarray) -> np.ndarray:
    return np.array([offsets.get(str(g), 0.0) for g in groups], dtype=np.float64)


def train(
    specs: Sequence[CorpusSpec],
    options: TrainOptions,
    on_read: Callable[[int], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> SpamModel:
    """The whole training run; the returned model is ready to `save`.

    validation_percent 0: no holdout. The model is fitted on every deduplicated message
    and the threshold, the graded points and the reported figures all come from the
    pooled k-fold out-of-fold scores of those messages (training.crossval).
    """
    data = dataset.load(specs, jobs=options.jobs, progress=on_read)
    if len(data) == 0:
        raise ValueError("no messages in the given corpora")
    split = dataset.split(data, options.validation_percent)
    train_rows, val_rows = split.train, split.validation
    y_train = data.y[train_rows]
    if len(set(y_train.tolist())) < 2:
        raise ValueError("training needs both ham and spam")
    X_train = data.X[train_rows]
    y_val = data.y[val_rows]
    holdout = options.validation_percent > 0
    if holdout and not 0 < int((y_val == 0).sum()) < y_val.size:
        raise ValueError("the validation split needs both ham and spam: give more messages")
    if not holdout and options.threshold_folds < 2:
        raise ValueError("without a validation side the threshold needs --threshold-folds >= 2")

    # out-of-fold scores of the training side choose the threshold (k-fold by hash)
    cross: dict[str, Any] | None = None
    if options.threshold_folds >= 2:
        folds = fold_of([data.fingerprint[r] for r in train_rows], options.threshold_folds)
        oof = out_of_fold_scores(X_train, y_train, folds, options, on_epoch)
        if (y_train == 0).sum() and (y_train == 1).sum():
            cross = {"scores": oof, "labels": y_train, "corpora": data.corpus[train_rows]}
    offsets: dict[str, float] = {}
    if cross is not None and options.group_offsets and data.groups:
        train_groups = np.asarray([data.groups[r] for r in train_rows], dtype=object)
        offsets = group_offsets(oof, y_train, train_groups, options.max_fpr)
        cross["scores"] = oof + offsets_of(offsets, train_groups)

    idf = inverse_document_frequency(X_train) if options.idf else None
    model = SpamModel(make_estimator(options), _model_metadata(options), idf)
    fit(model.estimator, model.transform(X_train), y_train, options.epochs, options.seed, on_epoch)
    scores = model.decision(data.X[val_rows]) if holdout else np.zeros(0)
    if offsets and holdout:
        scores += offsets_of(offsets, np.asarray([data.groups[r] for r in val_rows], object))

    # the scores the threshold and the graded points are read from
    if cross is not None:
        chosen_on, chosen_labels = cross["scores"], cross["labels"]
        side = "training side" if holdout else "deduplicated messages (all of them)"
        rule = (
            f"{options.threshold_folds}-fold out-of-fold scores of the {side}' "
            f"{int((y_train == 0).sum())} ham (folds by sha256({FOLD_SALT.decode()} + "
            "fingerprint))" + ("; the validation side never influenced it" if holdout else "")
        )
    else:
        chosen_on, chosen_labels = scores, y_val
        rule = f"the validation side's {int((y_val == 0).sum())} ham"
    ham_scores = chosen_on[chosen_labels == 0]
    threshold = evaluate.threshold_for_fpr(ham_scores, options.max_fpr)
    metadata: dict[str, Any] = {
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "libraries": library_versions(),
        "platform": {"machine": platform.machine(), "system": platform.system()},
        "command": " ".join(["mailwarden", *sys.argv[1:]]) if sys.argv else "",
        "options": asdict(options),
        "training_data": data.files,
        "split": split.report,
        "max_fpr": options.max_fpr,
        "threshold": threshold,
        "threshold_rule": f"lowest score with FPR <= {options.max_fpr:g} on {rule}",
        # scores for the classifier filter's graded symbols (filters.classifier)
        "score_points": {
            "unsure": min(evaluate.threshold_for_fpr(ham_scores, UNSURE_FPR), threshold),
            "confident": _confident_point(chosen_on[chosen_labels == 1], threshold),
        },
        "calibration": calibrate(chosen_on, chosen_labels),
        "group_offsets": offsets,
    }
    if holdout:
        validation = evaluate.metrics(y_val, scores, threshold, max_fpr=options.max_fpr)
        validation["per_corpus"] = per_corpus(
            data.corpus[val_rows], y_val, scores, threshold, options.max_fpr
        )
        metadata["validation"] = validation
    if cross is not None:
        cv = evaluate.metrics(cross["labels"], cross["scores"], threshold, max_fpr=options.max_fpr)
        cv["per_corpus"] = per_corpus(
            cross["corpora"], cross["labels"], cross["scores"], threshold, options.max_fpr
        )
        languages = [data.languages[r] for r in train_rows] if data.languages else None
        groups = [data.groups[r] for r in train_rows] if data.groups else None
        cv["pooled_report"] = crossval.report(
            cross["labels"], cross["scores"], cross["corpora"], languages, options.max_fpr, groups
        )
        cv["folds"] = options.threshold_folds
        cv["note"] = (
            "each message scored by a model fitted on the other folds; the threshold was "
            "chosen on these ham, so their false-positive count is fitted, not measured "
            "(the spam recall is a fair estimate)"
            + ("; the validation side is the independent test" if holdout else "")
        )
        metadata["cross_validation"] = cv
    model.metadata.update(metadata)
    return model


def update(
    model_path: str,
    specs: Sequence[CorpusSpec],
    options: TrainOptions,
    on_read: Callable[[int], None] | None = None,
) -> SpamModel:
    """Fold confirmed messages into an existing model (one shuffled partial_fit pass)."""
    model = SpamModel.load(model_path)
    data = dataset.load(specs, jobs=options.jobs, progress=on_read, version=model.features_version)
    if len(data) == 0:
        raise ValueError("no messages in the given corpora")
    order = np.random.default_rng(options.seed).permutation(len(data))
    model.partial_fit_vectors(data.X[order], data.y[order])
    model.metadata.setdefault("update_data", []).append(data.files)
    return model
