"""The classifier filter: graded symbols coherent with the default weights and thresholds."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from filters.base import Filter, Scope
from filters.classifier import HAM, SPAM, UNSURE, ClassifierFilter, ScorePoints, symbols_for
from gateway.config import ConfigError, Settings
from gateway.domain_policy import PolicyBook
from gateway.model import Envelope, MessageContext
from tests.support.corpusgen import write_tar
from tests.support.mailgen import make_message
from training.corpus import parse_spec
from training.train import TrainOptions, train

POLICY = PolicyBook.from_settings(Settings()).for_domain("corp.example")
POINTS = ScorePoints(unsure=-1.0, threshold=2.0, confident=6.0)


def _score(symbols) -> float:
    """What the policy adds up: configured weight times the filter's factor."""
    return sum(POLICY.weight(s.name) * s.factor for s in symbols)


def test_at_the_threshold_the_classifier_alone_reaches_tag():
    tag = POLICY.thresholds.tag
    (sym,) = symbols_for(POINTS.threshold, POINTS, "p=0.99")
    assert sym.name == SPAM and _score([sym]) >= tag
    assert _score(symbols_for(100.0, POINTS, "")) < POLICY.thresholds.reject  # never rejects
    assert _score(symbols_for(POINTS.confident, POINTS, "")) >= POLICY.thresholds.quarantine


def test_below_the_threshold_the_classifier_alone_never_reaches_tag():
    tag = POLICY.thresholds.tag
    for score in (1.999999, 1.5, 0.0, -0.5):
        (sym,) = symbols_for(score, POINTS, "")
        assert sym.name == UNSURE and _score([sym]) < tag, score
    (sym,) = symbols_for(-5.0, POINTS, "")
    assert sym.name == HAM and _score([sym]) < 0


def test_spam_grade_grows_with_the_score():
    grades = [symbols_for(s, POINTS, "")[0].factor for s in (2.0, 3.0, 4.0, 6.0, 9.0)]
    assert grades == sorted(grades) and grades[0] == 1.0 and grades[-1] == 2.5


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    corpus = write_tar(tmp_path_factory.mktemp("c") / "gen.tar.gz", 120, 120, seed=3)
    model = train([parse_spec(str(corpus))], TrainOptions(epochs=5, max_fpr=0.01))
    path = tmp_path_factory.mktemp("m") / "m.skops"
    model.save(path)
    return ClassifierFilter.from_settings(Settings(classifier={"model": str(path)}))


def _ctx(raw: bytes) -> MessageContext:
    env = Envelope(mail_from="a@x.example", rcpt_tos=("bob@corp.example",), client_ip="192.0.2.1")
    return MessageContext("Q1", env, raw, datetime.now(UTC))


def test_filter_scores_in_lookup_and_reports_probability_and_version(classifier):
    assert isinstance(classifier, Filter)
    rng = random.Random(11)
    results = {}
    for spam in (True, False):
        ctx = _ctx(make_message(spam, rng, 1))
        verdict = asyncio.run(classifier.lookup(ctx, None))
        results[spam] = classifier.evaluate(ctx, verdict, Scope("corp.example", POLICY))
    spam, ham = results[True], results[False]
    assert spam.symbols[0].name == SPAM and _score(spam.symbols) >= POLICY.thresholds.tag
    assert ham.symbols[0].name != SPAM and _score(ham.symbols) < POLICY.thresholds.tag
    assert spam.facts["model_version"] == classifier.model.version
    assert spam.facts["probability"] > 0.5 > ham.facts["probability"]
    assert spam.symbols[0].options[0].startswith("p=")


def test_missing_evidence_is_an_error_not_a_verdict(classifier):
    result = classifier.evaluate(_ctx(b"Subject: x\n\n"), None, Scope("corp.example", POLICY))
    assert result.error and not result.symbols


def test_disabled_or_missing_model(tmp_path):
    assert ClassifierFilter.from_settings(Settings(classifier={"enabled": False})) is None
    missing = Settings(classifier={"model": str(tmp_path / "none.skops")})
    with pytest.raises(ConfigError, match=r"classifier\.model: .*model file not found"):
        ClassifierFilter.from_settings(missing)


def test_a_message_over_the_inline_size_scores_as_a_small_one_does(classifier):
    """Small messages are scored on the event loop, big ones on a worker thread: the
    same score either way."""
    from filters import classifier as module

    rng = random.Random(12)
    small = make_message(True, rng, 2)
    big = small + b"\r\n" + b"padding words to pass the inline size\r\n" * 2000
    assert len(small) <= module.INLINE_BYTES < len(big)
    for raw in (small, big):
        ctx = _ctx(raw)
        assert asyncio.run(classifier.lookup(ctx, None)) == classifier.score(_ctx(raw))
