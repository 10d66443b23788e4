"""Score labelled corpora with a model, keeping only messages it has never seen.

A model records the hash of every corpus file it was trained on and its split rule.
In `auto` mode a corpus the model was trained on is reduced to its validation side
(deduplicated exactly as in training); any other corpus is scored whole. Scoring runs
in this process, one core, so messages_per_second is the single-core classification
speed (parsing, features and the linear model; not the corpus decompression), counted
in CPU time of this process so that other load on a shared machine does not halve it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training import dataset, evaluate
from training.corpus import CorpusSpec, read_corpus
from training.features import extract_raw, vectorize
from training.model import SpamModel

SPLIT_MODES = ("auto", "all", "validation")


@dataclass
class Scored:
    labels: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    corpora: list[str] = field(default_factory=list)
    seconds: float = 0.0
    selection: dict[str, str] = field(default_factory=dict)  # corpus -> what was scored


def trained_on(model: SpamModel, spec: CorpusSpec) -> bool:
    sha = dataset.file_sha256(spec.path)
    return sha is not None and any(
        f.get("sha256") == sha for f in model.metadata.get("training_data", [])
    )


def score_corpora(
    model: SpamModel,
    specs: Sequence[CorpusSpec],
    split_mode: str = "auto",
    progress: Callable[[int], None] | None = None,
    batch: int = 128,
) -> Scored:
    percent = int(model.metadata.get("options", {}).get("validation_percent", 20))
    out = Scored()
    for spec in specs:
        validation_only = split_mode == "validation" or (
            split_mode == "auto" and trained_on(model, spec)
        )
        out.selection[spec.name] = (
            f"validation side only ({percent}%, near-duplicates dropped): "
            "the model trained on the rest"
            if validation_only
            else "every message"
        )
        seen: set[bytes] = set()
        pending: list[tuple[int, list[str]]] = []
        for message in read_corpus(spec):
            started = time.process_time()
            feats = extract_raw(message.raw)
            out.seconds += time.process_time() - started
            if validation_only:
                if feats.fingerprint in seen or not dataset.is_validation(
                    feats.fingerprint, percent
                ):
                    continue
                seen.add(feats.fingerprint)
            pending.append((message.label, feats.tokens))
            if len(pending) >= batch:
                _flush(model, pending, spec.name, out)
                if progress:
                    progress(batch)
                pending = []
        if pending:
            _flush(model, pending, spec.name, out)
            if progress:
                progress(len(pending))
    return out


def _flush(model: SpamModel, pending: list[tuple[int, list[str]]], name: str, out: Scored):
    started = time.process_time()
    scores = model.decision(vectorize([tokens for _, tokens in pending]))
    out.seconds += time.process_time() - started
    out.labels.extend(label for label, _ in pending)
    out.scores.extend(scores.tolist())
    out.corpora.extend([name] * len(pending))


def report(model: SpamModel, scored: Scored) -> dict[str, Any]:
    """The `mailwarden eval --json` document."""
    labels = np.asarray(scored.labels, dtype=np.int8)
    scores = np.asarray(scored.scores, dtype=np.float64)
    corpora = np.asarray(scored.corpora, dtype=object)
    max_fpr = float(model.metadata.get("max_fpr", 0.0001))
    out = evaluate.metrics(labels, scores, model.threshold, max_fpr=max_fpr)
    out["messages_per_second"] = (
        round(labels.size / scored.seconds, 1) if scored.seconds > 0 else None
    )
    out["threshold"] = model.threshold
    out["model_version"] = model.version
    out["selection"] = scored.selection
    out["per_corpus"] = {
        str(name): evaluate.metrics(
            labels[corpora == name], scores[corpora == name], model.threshold, max_fpr=max_fpr
        )
        for name in dict.fromkeys(scored.corpora)
    }
    return out
