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
from training.features import MessageFeatures, extract_raw
from training.model import SpamModel

SPLIT_MODES = ("auto", "all", "validation")


@dataclass
class Scored:
    labels: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    corpora: list[str] = field(default_factory=list)
    seconds: float = 0.0
    selection: dict[str, str] = field(default_factory=dict)  # corpus -> what was scored
    judged_spam: list[bool] = field(default_factory=list)  # pipeline mode: policy verdicts


def trained_on(model: SpamModel, spec: CorpusSpec) -> bool:
    sha = dataset.file_sha256(spec.path)
    return sha is not None and any(
        f.get("sha256") == sha for f in model.metadata.get("training_data", [])
    )


def unseen(
    model: SpamModel, spec: CorpusSpec, split_mode: str, out: Scored
) -> Callable[[bytes], bool]:
    """A predicate on fingerprints: True for messages the evaluation should count."""
    percent = int(model.metadata.get("options", {}).get("validation_percent", 20))
    validation_only = split_mode == "validation" or (
        split_mode == "auto" and trained_on(model, spec)
    )
    out.selection[spec.name] = (
        "nothing: the model was fitted on every message of this corpus (its figures are "
        "the cross-validated ones in its metadata; measure it on mail it never saw)"
        if validation_only and percent == 0
        else f"validation side only ({percent}%, near-duplicates dropped): the model "
        "trained on the rest"
        if validation_only
        else "every message"
    )
    seen: set[bytes] = set()

    def keep(fingerprint: bytes) -> bool:
        if not validation_only:
            return True
        if fingerprint in seen or not dataset.is_validation(fingerprint, percent):
            return False
        seen.add(fingerprint)
        return True

    return keep


def score_corpora(
    model: SpamModel,
    specs: Sequence[CorpusSpec],
    split_mode: str = "auto",
    progress: Callable[[int], None] | None = None,
    batch: int = 128,
) -> Scored:
    """The model's score for every message to count (batched, one core)."""
    out = Scored()
    for spec in specs:
        keep = unseen(model, spec, split_mode, out)
        pending: list[tuple[int, MessageFeatures]] = []
        for message in read_corpus(spec):
            started = time.process_time()
            feats = extract_raw(message.raw, version=model.features_version)
            if not keep(feats.fingerprint):
                continue  # not counted, and neither is its time
            out.seconds += time.process_time() - started
            pending.append((message.label, feats))
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


def _flush(model: SpamModel, pending: list[tuple[int, MessageFeatures]], name: str, out: Scored):
    started = time.process_time()
    tokens = [feats.tokens for _, feats in pending]
    scores = model.scores(tokens, [f.raw_grams for _, f in pending])
    out.seconds += time.process_time() - started
    out.labels.extend(label for label, _ in pending)
    out.scores.extend(scores.tolist())
    out.corpora.extend([name] * len(pending))


def report(model: SpamModel, scored: Scored, tag: float | None = None) -> dict[str, Any]:
    """The `mailwarden eval --json` document.

    auc and recall_at_fpr always grade the classifier's scores. With `tag` (pipeline
    mode) the counts (false positives, spam recall...) are the policy's verdicts: spam
    when the content filters' total reached the tag threshold (or a force said so);
    without it (model mode) they compare the model's score with its threshold.
    """
    labels = np.asarray(scored.labels, dtype=np.int8)
    scores = np.asarray(scored.scores, dtype=np.float64)
    corpora = np.asarray(scored.corpora, dtype=object)
    max_fpr = float(model.metadata.get("max_fpr", 0.0001))

    def measure(rows: np.ndarray) -> dict[str, Any]:
        result = evaluate.metrics(labels[rows], scores[rows], model.threshold, max_fpr=max_fpr)
        if tag is not None:  # count what the policy decided
            judged = np.asarray(scored.judged_spam, dtype=bool)[rows]
            result.update(evaluate.counts(labels[rows], judged))
            note = evaluate.support_note(result["false_positives"], result["ham"], max_fpr)
            result["notes"] = [n for n in result["notes"] if "not enough ham" not in n]
            result["notes"] += [note] if note and result["ham"] else []
        return result

    out = measure(np.ones(labels.size, dtype=bool))
    out["messages_per_second"] = (
        round(labels.size / scored.seconds, 1) if scored.seconds > 0 else None
    )
    out["mode"] = "model" if tag is None else "pipeline"
    out["threshold"] = model.threshold
    if tag is not None:
        out["policy_tag"] = tag
    out["model_version"] = model.version
    out["selection"] = scored.selection
    out["per_corpus"] = {
        str(name): measure(corpora == name) for name in dict.fromkeys(scored.corpora)
    }
    return out
