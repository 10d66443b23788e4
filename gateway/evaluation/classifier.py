"""Labelled corpora through the real content filters and policy, as production judges them.

The model-only path (training.scoring) grades the classifier alone; this one runs each
message through the pipeline's content filters, the domain policy and its thresholds,
so `mailwarden eval --pipeline` measures what the gateway would do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from gateway.adapters import Ports
from gateway.domain_policy import PolicyBook
from gateway.mail.received import received_context
from gateway.model import Envelope, Verdict
from gateway.pipeline.chain import build_chain
from gateway.pipeline.run import Pipeline
from training.corpus import SPAM, CorpusSpec, read_corpus
from training.features import extract_raw
from training.model import SpamModel
from training.scoring import Scored, unseen

# The content filters the issue names: no network, no store, no SMTP envelope needed.
CONTENT_FILTERS = ("classifier", "rules")
DEFAULT_RCPT = "user@eval.invalid"
VerdictSink = Callable[[str, Verdict, float], None]


async def _pipeline_scores(
    settings: Any,
    model: SpamModel,
    specs: Sequence[CorpusSpec],
    split_mode: str,
    progress,
    filters: Sequence[str],
    sink: VerdictSink | None,
    rcpt: str,
) -> Scored:
    chain = [f for f in build_chain(settings) if f.name in filters]
    pipeline = Pipeline(chain, PolicyBook.from_settings(settings), Ports(), budget=60.0)
    envelope = Envelope(mail_from="", rcpt_tos=(rcpt,), client_ip="192.0.2.1")
    out = Scored()
    count = 0
    for spec in specs:
        keep = unseen(model, spec, split_mode, out)
        for message in read_corpus(spec):
            if not keep(extract_raw(message.raw).fingerprint):
                continue
            count += 1
            ctx = received_context(f"EVAL{count:012d}", envelope, message.raw)
            started = time.process_time()
            verdict = await pipeline.run(ctx)
            spent = time.process_time() - started
            out.seconds += spent
            if sink is not None:
                sink("spam" if message.label == SPAM else "ham", verdict, spent)
            decision = verdict.decisions[0]
            out.labels.append(message.label)
            # the classifier's own score grades messages (AUC, recall at FPR); the policy's
            # total takes few values (a symbol per filter) and would tie most messages
            out.scores.append(float(verdict.facts("classifier").get("score", decision.score)))
            out.judged_spam.append(decision.spam)
            out.corpora.append(spec.name)
            if progress:
                progress(1)
    return out


def score_corpora_pipeline(
    settings: Any,
    model: SpamModel,
    specs: Sequence[CorpusSpec],
    split_mode: str = "auto",
    progress: Callable[[int], None] | None = None,
    filters: Sequence[str] = CONTENT_FILTERS,
    sink: VerdictSink | None = None,
    rcpt: str = DEFAULT_RCPT,
) -> Scored:
    """Each message through the content filters, policy and thresholds, as `scan` does;
    `sink(label, verdict, seconds)` sees every verdict (eval --report's scratch ledger)."""
    return asyncio.run(
        _pipeline_scores(settings, model, specs, split_mode, progress, filters, sink, rcpt)
    )
