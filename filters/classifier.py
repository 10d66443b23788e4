"""The trained spam classifier as a filter: model score -> graded symbols.

Symbols (weights in rules/symbols/classifier.toml; defaults fit tag 5 / quarantine 10):

- CLASSIFIER_SPAM (5.0): score at or above the model's operating threshold (chosen for
  FPR <= max_fpr on ham the model never saw). Its factor grows from 1.0 at the threshold
  to 2.5 at the median score of caught unseen spam, so the classifier alone tags borderline
  spam and quarantines confident spam, but never rejects without other evidence.
- CLASSIFIER_UNSURE (3.0): between the 0.1%-FPR point and the threshold; factor 0..1,
  so it adds at most 3 (< tag) and needs other evidence to judge a message spam; only
  about 0.1% of ham gets it at all.
- CLASSIFIER_HAM (-1.0): below the 0.1%-FPR point.

Scoring (features and linear model: about 1.5 ms a message of a few KB, up to ~50 ms on
a 1 MB one) runs in `lookup`: on the event loop for a message up to INLINE_BYTES (the
worker-thread hop cost the loop a fifth of the scoring, and under the GIL a thread runs
no sooner), on a worker thread for a bigger one so the loop keeps serving the other
sessions; `evaluate` only maps the number to symbols. The model is loaded once per process.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filters.base import Scope
from gateway.adapters import Ports
from gateway.config import ConfigError
from gateway.model import FilterResult, MessageContext, OnError, Symbol
from training.model import ModelError, SpamModel, default_model_path

SPAM, UNSURE, HAM = "CLASSIFIER_SPAM", "CLASSIFIER_UNSURE", "CLASSIFIER_HAM"
MAX_SPAM_FACTOR = 2.5
INLINE_BYTES = 64 * 1024  # scored on the event loop up to this size (module docstring)

_models: dict[Path, SpamModel] = {}
_models_lock = threading.Lock()


def load_model(path: str | Path | None = None) -> SpamModel:
    """The model at path (default: the shipped baseline), read once per process."""
    resolved = Path(path or default_model_path()).resolve()
    with _models_lock:
        model = _models.get(resolved)
        if model is None:
            model = SpamModel.load(resolved)
            model.score_raw(b"Subject: warm-up\r\n\r\nfirst use loads lazy code paths\r\n")
            _models[resolved] = model
        return model


@dataclass(frozen=True)
class ClassifierScore:
    score: float
    probability: float
    model_version: str


@dataclass(frozen=True)
class ScorePoints:
    """Where the grades change, in the model's score units (from its metadata)."""

    unsure: float
    threshold: float
    confident: float

    @classmethod
    def of(cls, model: SpamModel) -> ScorePoints:
        points = model.metadata.get("score_points", {})
        threshold = model.threshold
        unsure = min(float(points.get("unsure", threshold - 1.0)), threshold)
        confident = max(float(points.get("confident", threshold + 1.0)), threshold)
        return cls(unsure, threshold, confident)


def symbols_for(score: float, points: ScorePoints, option: str) -> tuple[Symbol, ...]:
    """The graded symbol for one score (pure: tested against the default weights)."""
    if score >= points.threshold:
        span = points.confident - points.threshold
        grade = 1.0 if span <= 0 else min(1.0, (score - points.threshold) / span)
        return (Symbol(SPAM, (option,), 1.0 + (MAX_SPAM_FACTOR - 1.0) * grade),)
    if score >= points.unsure:
        span = points.threshold - points.unsure
        grade = 0.0 if span <= 0 else (score - points.unsure) / span
        return (Symbol(UNSURE, (option,), max(0.0, min(grade, 0.999))),)
    return (Symbol(HAM, (option,), 1.0),)


class ClassifierFilter:
    """Scores each message once with the trained model (see module docstring)."""

    name = "classifier"
    on_error = OnError.CONTINUE  # without the classifier, the other filters still decide

    def __init__(self, model: SpamModel) -> None:
        self.model = model
        self.points = ScorePoints.of(model)

    @classmethod
    def from_settings(cls, settings: Any) -> ClassifierFilter | None:
        """None when disabled; a missing or foreign model file is a ConfigError."""
        section = settings.classifier
        if not section.enabled:
            return None
        try:
            return cls(load_model(section.model))
        except ModelError as exc:
            raise ConfigError(f"classifier.model: {exc}") from None

    def score(self, ctx: MessageContext) -> ClassifierScore:
        value = self.model.score_message(ctx.message, ctx.parts, ctx.raw)
        return ClassifierScore(value, self.model.probability(value), self.model.version)

    async def lookup(self, ctx: MessageContext, ports: Ports) -> ClassifierScore:
        if len(ctx.raw) > INLINE_BYTES:
            return await asyncio.to_thread(self.score, ctx)
        await asyncio.sleep(0)  # the other lookups send their DNS queries first
        return self.score(ctx)

    def evaluate(
        self, ctx: MessageContext, evidence: ClassifierScore | None, scope: Scope
    ) -> FilterResult:
        if evidence is None:
            return FilterResult(error="no classifier verdict")
        option = f"p={evidence.probability:.4f}"
        return FilterResult(
            symbols=symbols_for(evidence.score, self.points, option),
            facts={
                "probability": evidence.probability,
                "score": evidence.score,
                "threshold": self.points.threshold,
                "spam": evidence.score >= self.points.threshold,
                "model_version": evidence.model_version,
            },
        )
