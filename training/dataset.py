"""Corpora -> hashed feature matrix, with near-duplicate grouping and a split by hash.

Feature extraction dominates training time, so it runs in worker processes over
chunks of raw messages. The split is a pure function of each message's near-duplicate
fingerprint: copies of one campaign land on the same side, and the same message always
lands on the same side whichever corpora are combined (so `eval` can later pick the
messages a model never saw).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from training import groups, language
from training.corpus import CorpusSpec, LabelledMessage, read_corpus
from training.features import FEATURES_VERSION, extract_raw, vectorize

SPLIT_SALT = b"mailwarden-split-1"
VALIDATION_PERCENT = 20
CHUNK = 256


def split_bucket(fingerprint: bytes, salt: bytes = SPLIT_SALT) -> int:
    """0..99, from the fingerprint only (not sha256 % 5: the corpora's holdout rule)."""
    return int.from_bytes(hashlib.sha256(salt + fingerprint).digest()[:8], "big") % 100


def is_validation(fingerprint: bytes, percent: int = VALIDATION_PERCENT) -> bool:
    return split_bucket(fingerprint) < percent


@dataclass
class Dataset:
    """Rows of X with their label, corpus, near-duplicate fingerprint and raw hash."""

    X: sp.csr_matrix
    y: np.ndarray
    corpus: np.ndarray  # corpus name per row
    fingerprint: list[bytes]
    sha256: list[str]
    files: list[dict[str, Any]] = field(default_factory=list)  # per corpus: path, sha256, counts
    languages: list[str] = field(default_factory=list)  # training.language's guess per row
    groups: list[str] = field(default_factory=list)  # training.groups.group_of per row

    def __len__(self) -> int:
        return int(self.y.size)

    def subset(self, rows: np.ndarray | Sequence[int]) -> Dataset:
        rows = np.asarray(rows, dtype=np.int64)
        return Dataset(
            self.X[rows],
            self.y[rows],
            self.corpus[rows],
            [self.fingerprint[i] for i in rows],
            [self.sha256[i] for i in rows],
            self.files,
            [self.languages[i] for i in rows] if self.languages else [],
            [self.groups[i] for i in rows] if self.groups else [],
        )


def _featurize(
    raws: list[bytes], version: str = FEATURES_VERSION
) -> tuple[sp.csr_matrix, list[bytes], list[str], list[tuple[str, str]]]:
    feats = [extract_raw(raw, version=version) for raw in raws]
    matrix = vectorize([f.tokens for f in feats], version, [f.raw_grams for f in feats])
    shas = [hashlib.sha256(r).hexdigest() for r in raws]
    kinds = [
        (language.guess(groups.words_text(f.tokens)), groups.group_of(f.tokens)) for f in feats
    ]
    return matrix, [f.fingerprint for f in feats], shas, kinds


def _chunks(messages: Iterable[LabelledMessage]) -> Iterator[list[LabelledMessage]]:
    chunk: list[LabelledMessage] = []
    for message in messages:
        chunk.append(message)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def file_sha256(path: os.PathLike[str] | str) -> str | None:
    """Hash of a corpus file (None for directories: their hash is the messages')."""
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(
    specs: Sequence[CorpusSpec],
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
    version: str = FEATURES_VERSION,
) -> Dataset:
    """Read and featurize every corpus; `progress(n)` is called as messages are done.

    `version`: the token set (features.FEATURES_VERSIONS), e.g. an updated model's own."""
    featurize = functools.partial(_featurize, version=version)
    matrices: list[Any] = []
    labels: list[Any] = []
    corpora: list[Any] = []
    fps: list[Any] = []
    shas: list[Any] = []
    files: list[Any] = []
    langs: list[list[tuple[str, str]]] = []
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    try:
        for spec in specs:
            counts = {"ham": 0, "spam": 0}
            chunk_iter = _chunks(read_corpus(spec))
            pending: list[tuple[list[LabelledMessage], Any]] = []
            for chunk in chunk_iter:
                raws = [m.raw for m in chunk]
                future = pool.submit(featurize, raws) if pool else None
                pending.append((chunk, future if future else featurize(raws)))
                while pending and (len(pending) > 2 * jobs or not pool):
                    _collect(pending.pop(0), matrices, labels, corpora, fps, shas, langs, counts)
                    if progress:
                        progress(len(labels[-1]))
            while pending:
                _collect(pending.pop(0), matrices, labels, corpora, fps, shas, langs, counts)
                if progress:
                    progress(len(labels[-1]))
            files.append(
                {
                    "corpus": spec.name,
                    "file": spec.path.name,
                    "sha256": file_sha256(spec.path),
                    "label": None if spec.label is None else ("spam" if spec.label else "ham"),
                    "counts": counts,
                }
            )
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    if not labels:
        return Dataset(sp.csr_matrix((0, 1)), np.zeros(0, int), np.array([]), [], [], files)
    return Dataset(
        sp.vstack(matrices, format="csr"),
        np.concatenate(labels),
        np.concatenate(corpora),
        [fp for chunk in fps for fp in chunk],
        [s for chunk in shas for s in chunk],
        files,
        [lang for chunk in langs for lang, _ in chunk],
        [group for chunk in langs for _, group in chunk],
    )


def _collect(item, matrices, labels, corpora, fps, shas, langs, counts) -> None:
    chunk, result = item
    matrix, fp, sha, lang = result.result() if hasattr(result, "result") else result
    langs.append(lang)
    y = np.array([m.label for m in chunk], dtype=np.int8)
    matrices.append(matrix)
    labels.append(y)
    corpora.append(np.array([m.corpus for m in chunk], dtype=object))
    fps.append(fp)
    shas.append(sha)
    counts["spam"] += int(y.sum())
    counts["ham"] += int(y.size - y.sum())


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # row indices, near-duplicates removed
    validation: np.ndarray
    report: dict[str, Any]


def split(data: Dataset, percent: int = VALIDATION_PERCENT) -> Split:
    """Deduplicate (exact and near) and split by fingerprint hash.

    One row per fingerprint survives; a fingerprint seen with both labels is dropped
    entirely (the corpus cannot agree with itself about it).
    """
    first: dict[bytes, int] = {}
    labels_of: dict[bytes, set[int]] = {}
    exact: set[str] = set()
    exact_dups = 0
    for row, (fp, sha) in enumerate(zip(data.fingerprint, data.sha256, strict=True)):
        if sha in exact:
            exact_dups += 1
        exact.add(sha)
        first.setdefault(fp, row)
        labels_of.setdefault(fp, set()).add(int(data.y[row]))
    conflicts = {fp for fp, seen in labels_of.items() if len(seen) > 1}
    keep = sorted(row for fp, row in first.items() if fp not in conflicts)
    train = [r for r in keep if not is_validation(data.fingerprint[r], percent)]
    validation = [r for r in keep if is_validation(data.fingerprint[r], percent)]
    report = {
        "rule": f"validation iff sha256({SPLIT_SALT.decode()} + fingerprint)[:8] % 100 "
        f"< {percent}; fingerprint = sha256 of the lower-cased letters of subject + "
        "body with numbers, URLs and addresses removed",
        "messages_read": len(data),
        "exact_duplicates": exact_dups,
        "near_duplicates_dropped": len(data) - len(first),
        "label_conflict_groups_dropped": len(conflicts),
        "train": _counts(data, train),
        "validation": _counts(data, validation),
    }
    return Split(np.array(train, dtype=np.int64), np.array(validation, dtype=np.int64), report)


def _counts(data: Dataset, rows: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"ham": 0, "spam": 0, "per_corpus": {}}
    for row in rows:
        kind = "spam" if data.y[row] else "ham"
        out[kind] += 1
        per = out["per_corpus"].setdefault(str(data.corpus[row]), {"ham": 0, "spam": 0})
        per[kind] += 1
    return out
