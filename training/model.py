"""The spam model as a file: a scikit-learn estimator plus its metadata, saved with skops.

Pickle runs code from the file it loads; skops does not, provided we say which types we
expect. `load` therefore checks the file's types against an explicit list (only what
`save` writes) and refuses anything else, instead of `trusted=True`.

The model's score is the estimator's decision function (log-odds for a logistic loss);
the operating threshold is stored in the same units and chosen on ham the scoring model
never saw (out-of-fold training ham, training.train). `probability` is the logistic of
the calibrated score, for people and the ledger.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import skops.io as sio
from scipy.sparse._sparsetools import csr_matvec  # what X @ coef runs for a CSR matrix X

from gateway.paths import rules_dir
from training import features3, vectors
from training.features import (
    FEATURES_VERSION,
    FEATURES_VERSIONS,
    extract,
    extract_raw,
    n_features,
    normalize_rows,
    raw_block_offset,
    token_columns,
    vectorize,
    vectorize_arrays,
    word_feature_counts,
)
from training.groups import group_of

FORMAT = "mailwarden-classifier/1"
BASELINE_NAME = "baseline.skops"


def default_model_path() -> Path:
    """The baseline model shipped in rules/models/ (used when config names none)."""
    return rules_dir() / "models" / BASELINE_NAME


# Every type a model written by `save` contains; anything else in a file is refused.
TRUSTED_TYPES = [
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.linear_model._sgd_fast.Hinge",
    "sklearn.linear_model._sgd_fast.Log",
    "sklearn.linear_model._sgd_fast.ModifiedHuber",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn.utils._bunch.Bunch",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.float32",
    "numpy.int64",
    "numpy.int8",
    "builtins.slice",
]


class ModelError(Exception):
    """A model file that cannot be used, phrased for the operator."""


class SpamModel:
    """Estimator + metadata (threshold, versions, training data, validation metrics)."""

    def __init__(
        self, estimator: Any, metadata: dict[str, Any], idf: np.ndarray | None = None
    ) -> None:
        self.estimator = estimator
        self.metadata = metadata
        self.idf = None if idf is None else np.asarray(idf, dtype=np.float32)

    @property
    def features_version(self) -> str:
        """The token set the model was trained on (a new model: the current one)."""
        return str(self.metadata.get("features", {}).get("version") or FEATURES_VERSION)

    def transform(self, X: Any, copy: bool = True) -> Any:
        """Hashed, normalised counts -> idf-weighted and normalised again (TF-IDF), then
        messages with few distinct features scaled down (see `shrink_short_rows`)."""
        short = int(self.metadata.get("short_message_features") or 0)
        if self.idf is None and not short:
            return X
        if copy:
            X = sp.csr_matrix(X, copy=True)
        if self.idf is not None:
            X.data *= self.idf[X.indices]  # O(nnz); a diagonal-matrix product costs 10 ms
            X = normalize_rows(X)
        return shrink_short_rows(X, short) if short else X

    # -- scoring ----------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        """Scores >= threshold are spam (FPR <= max_fpr on ham the model did not see)."""
        return float(self.metadata["threshold"])

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unversioned"))

    def decision(self, X: Any, copy: bool = True) -> np.ndarray:
        """Scores of rows from `features.vectorize` (idf applied here, in place if not copy)."""
        X = self.transform(X, copy=copy)
        coef = getattr(self.estimator, "coef_", None)
        if coef is None or coef.shape[0] != 1:
            return np.asarray(self.estimator.decision_function(X), dtype=np.float64)
        # a linear model's decision function, without sklearn's per-call input checks
        return np.asarray(X @ coef[0] + self.estimator.intercept_[0], dtype=np.float64)

    def _linear_decision(self, rows: vectors.Rows) -> np.ndarray:
        """`decision` of rows as arrays, in place: the same arithmetic (transform, then
        scipy's own CSR matrix-vector product, `X @ coef` without building X)."""
        X = self.transform(rows, copy=False)
        coef = self.estimator.coef_[0]
        product = np.zeros(rows.shape[0], dtype=np.result_type(rows.data.dtype, coef.dtype))
        csr_matvec(*rows.shape, X.indptr, X.indices, X.data, coef, product)
        return np.asarray(product + self.estimator.intercept_[0], dtype=np.float64)

    def vectorize(
        self, token_lists: Sequence[list[str]], grams: Sequence[np.ndarray | None] | None = None
    ) -> Any:
        """Rows for this model's features version (`grams`: mw-features-3's byte 4-grams)."""
        return vectorize(token_lists, self.features_version, grams)

    def scores(
        self, token_lists: Sequence[list[str]], grams: Sequence[np.ndarray | None] | None = None
    ) -> np.ndarray:
        """The scores the threshold applies to: decision plus each message's group offset."""
        coef = getattr(self.estimator, "coef_", None)
        if coef is not None and coef.shape[0] == 1:  # a linear model: no scipy matrix
            rows = vectorize_arrays(token_lists, self.features_version, grams)
            scores = self._linear_decision(rows)
        else:
            scores = self.decision(self.vectorize(token_lists, grams), copy=False)
        offsets = self.group_offsets
        if offsets:
            scores += np.array([offsets.get(group_of(t), 0.0) for t in token_lists])
        return scores

    @property
    def group_offsets(self) -> dict[str, float]:
        """Per score group (training.groups), added to the decision (none: {})."""
        return {str(k): float(v) for k, v in (self.metadata.get("group_offsets") or {}).items()}

    def score_raw(self, raw: bytes) -> float:
        feats = extract_raw(raw, fingerprint=False, version=self.features_version)
        return float(self.scores([feats.tokens], [feats.raw_grams])[0])

    def score_message(
        self, msg: Any, parts: Sequence[Any] | None = None, raw: bytes | None = None
    ) -> float:
        """Score an already parsed message (the gateway's MessageContext message, parts
        and raw bytes; without raw, mw-features-3 models read the message re-serialised)."""
        feats = extract(msg, parts, raw=raw, fingerprint=False, version=self.features_version)
        return float(self.scores([feats.tokens], [feats.raw_grams])[0])

    def explain(
        self, msg: Any, parts: Sequence[Any] | None = None, raw: bytes | None = None, top: int = 8
    ) -> dict[str, list[dict[str, Any]]]:
        """The features that pushed this message's score up and down the most.

        Each entry: the tokens hashed to one column (or the raw 4 bytes of a byte 4-gram)
        and its share of the score (transformed value x weight). The intercept and the
        group offset are not features and are left out.
        """
        version = self.features_version
        feats = extract(msg, parts, raw=raw, fingerprint=False, version=version)
        row = self.transform(self.vectorize([feats.tokens], [feats.raw_grams]))
        coef = self.estimator.coef_[0]
        shares = row.data * coef[row.indices]
        names = token_columns(feats.tokens, version)
        grams: dict[int, bytes] = {}
        if version == "mw-features-3":
            source = raw if raw is not None else msg.as_bytes()
            grams = features3.raw_gram_bytes(source)
        offset = raw_block_offset()
        entries: list[dict[str, Any]] = []
        for column, share in zip(row.indices.tolist(), shares.tolist(), strict=True):
            if column >= offset and version == "mw-features-3":
                label = "raw:" + grams.get(column - offset, b"?").decode("latin-1")
            else:
                label = " | ".join(names.get(column, ["?"]))
            entries.append({"feature": label, "share": round(float(share), 4)})
        entries.sort(key=lambda e: e["share"])
        return {
            "up": [e for e in reversed(entries[-top:]) if e["share"] > 0],
            "down": [e for e in entries[:top] if e["share"] < 0],
        }

    def probability(self, score: float) -> float:
        """Spam probability: the score through the Platt scaling fitted on unseen scores."""
        cal = self.metadata.get("calibration") or {"a": 1.0, "b": 0.0}
        score = float(cal["a"]) * score + float(cal["b"])
        if score >= 0:
            return 1.0 / (1.0 + math.exp(-score))
        z = math.exp(score)
        return z / (1.0 + z)

    # -- learning from feedback ------------------------------------------------------

    def partial_fit(
        self,
        token_lists: Sequence[list[str]],
        labels: Sequence[int],
        grams: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        """Update the estimator with confirmed messages (spam = 1) without retraining.

        The threshold is kept: it was chosen on unseen ham and is re-chosen only
        by a new `mailwarden train`. The update is counted in the metadata.
        """
        self.partial_fit_vectors(self.vectorize(token_lists, grams), labels)

    def partial_fit_vectors(self, X: Any, labels: Sequence[int] | np.ndarray) -> None:
        y = np.asarray(labels, dtype=np.int8)
        self.estimator.partial_fit(self.transform(X), y, classes=np.array([0, 1]))
        updates = self.metadata.setdefault("updates", [])
        updates.append({"ham": int((y == 0).sum()), "spam": int((y == 1).sum())})

    # -- files -----------------------------------------------------------------------

    def save(self, path: str | Path) -> str:
        """Write the model with skops; returns its version (the content hash)."""
        self.metadata["format"] = FORMAT
        version = self.features_version
        self.metadata["features"] = {"version": version, "n_features": n_features(version)}
        body = json.dumps(self.metadata, sort_keys=True, default=_json_default)
        stored = _compact(self.estimator)
        estimator_bytes = sio.dumps(stored)
        idf_bytes = b"" if self.idf is None else self.idf.tobytes()
        digest = hashlib.sha256(estimator_bytes + idf_bytes + body.encode()).hexdigest()[:12]
        name = str(self.metadata.get("name", "mailwarden"))
        self.metadata["version"] = f"{name}-{digest}"
        body = json.dumps(self.metadata, sort_keys=True, default=_json_default)
        payload = {"format": FORMAT, "estimator": stored, "metadata": body, "idf": self.idf}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        sio.dump(payload, tmp, compression=8)  # zipfile.ZIP_DEFLATED
        tmp.replace(path)
        return self.metadata["version"]

    @classmethod
    def load(cls, path: str | Path) -> SpamModel:
        """Read a model written by `save`, refusing files with unexpected types."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        try:
            untrusted = sio.get_untrusted_types(file=path)
        except Exception as exc:  # noqa: BLE001 - zip/JSON errors of many kinds
            raise ModelError(f"{path}: not a skops model file ({exc})") from None
        unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
        if unexpected:
            raise ModelError(
                f"{path}: refusing to load types not written by mailwarden: "
                + ", ".join(unexpected)
            )
        try:
            payload = sio.load(path, trusted=[t for t in untrusted if t in TRUSTED_TYPES])
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{path}: cannot load model ({exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ModelError(f"{path}: not a mailwarden classifier ({FORMAT})")
        metadata = json.loads(payload["metadata"])
        features = metadata.get("features", {})
        if features.get("version") not in FEATURES_VERSIONS:
            raise ModelError(
                f"{path}: built for features {features.get('version')!r}, this mailwarden "
                f"extracts {', '.join(map(repr, FEATURES_VERSIONS))}: retrain with "
                "`mailwarden train`"
            )
        return cls(_restore(payload["estimator"]), metadata, payload.get("idf"))


_AVERAGING_STATE = ("_standard_coef", "_average_coef", "_standard_intercept", "_average_intercept")


def _compact(estimator: Any) -> Any:
    """A shallow copy without the averaged SGD's working copies of its weights.

    With average=True an SGDClassifier keeps the plain and the averaged weights beside
    coef_ (which is the averaged ones): three arrays of 2.9 million floats where one
    scores. The file keeps coef_ only; `_restore` rebuilds the rest from it.
    """
    if not any(hasattr(estimator, name) for name in _AVERAGING_STATE):
        return estimator
    stored = copy.copy(estimator)
    for name in _AVERAGING_STATE:
        stored.__dict__.pop(name, None)
    return stored


def _restore(estimator: Any) -> Any:
    """Averaging state for partial_fit from coef_: feedback updates continue from the
    averaged weights (the plain SGD iterate is not kept in the file)."""
    coef: Any = getattr(estimator, "coef_", None)
    restore = getattr(estimator, "average", False) and coef is not None
    if restore and not hasattr(estimator, "_average_coef"):
        # the dtype of the fit (float32 rows give float32 weights): partial_fit needs it
        estimator._average_coef = np.array(coef[0], dtype=coef.dtype, order="C")
        estimator._standard_coef = estimator._average_coef.copy()
        estimator.coef_ = estimator._average_coef.reshape(1, -1)
        intercept = estimator.intercept_
        estimator._average_intercept = np.array(intercept, dtype=intercept.dtype)
        estimator._standard_intercept = estimator._average_intercept.copy()
        estimator.intercept_ = estimator._average_intercept
    return estimator


def shrink_short_rows(X: sp.csr_matrix, features: int) -> sp.csr_matrix:
    """Scale rows with fewer than `features` distinct features by sqrt(count / features).

    Only word-block features count (not character n-grams, features.word_feature_counts):
    the rule was fitted on them, and a note's few words make hundreds of n-grams.

    After L2 normalisation a two-line note weighs as much as a long letter, so its few
    words (a "your" in the subject) decide its score alone; scaled down, a short message
    stays near the intercept unless its words are strong evidence. In place.
    """
    counts = word_feature_counts(X)
    factors = np.minimum(1.0, np.sqrt(counts / float(features))).astype(X.data.dtype)
    if (factors < 1.0).any():
        X.data *= np.repeat(factors, np.diff(X.indptr))
    return X


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in model metadata")
