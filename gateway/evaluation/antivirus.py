"""Measuring antivirus effectiveness on labelled mail (virus/ and clean/ folders).

Each message goes through the gateway's real pipeline for one recipient with
the default policy (antivirus on, mode "clean", keep the original), and the
copy that recipient would receive is rendered as for delivery. Then:

- detected: a virus mail whose verdict names a virus, or that clamd could not
  fully scan (over its archive limits: held, per [clamav] on_unscannable);
- cleaned: a virus mail whose delivered copy, scanned again by the antivirus
  filter, is found clean, and whose every non-infected leaf part decodes to exactly
  the bytes it had (a quarantined or rejected copy is detected, not cleaned);
- false alarm: a clean mail the antivirus flagged (a virus, or a part it
  could not scan) or changed.

Rates come with 95% Wilson intervals: with 1,000 virus mails and none
missed, the interval still reaches down to 99.6%.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.mail.received import received_context
from gateway.mail.render import render
from gateway.model import DELIVERABLE, Envelope, MessageContext, Verdict
from gateway.pipeline.decide import ANTIVIRUS
from gateway.pipeline.run import Pipeline
from gateway.stats import wilson

EVAL_RCPT = "eval@example.invalid"


@dataclass
class Outcome:
    path: str
    label: str  # virus | clean
    detected: bool = False
    cleaned: bool = False
    flagged: bool = False
    error: str | None = None
    viruses: tuple[str, ...] = ()
    action: str = ""
    notes: list[str] = field(default_factory=list)


def corpus_files(root: Path) -> dict[str, list[Path]]:
    """virus/ and clean/ message files under `root` (recursively, sorted)."""
    out: dict[str, list[Path]] = {}
    for label in ("virus", "clean"):
        folder = root / label
        out[label] = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return out


def _context(raw: bytes, hostname: str) -> MessageContext:
    envelope = Envelope(
        mail_from="sender@example.invalid",
        rcpt_tos=(EVAL_RCPT,),
        client_ip="192.0.2.1",
        helo=hostname,
    )
    return received_context("eval", envelope, raw)


def _infections(verdict: Verdict) -> list[Any]:
    return [
        i for by in verdict.results.values() if ANTIVIRUS in by for i in by[ANTIVIRUS].infections
    ]


def antivirus_only(pipeline: Pipeline) -> Pipeline:
    """The same pipeline with only its antivirus filter: for rescanning cleaned copies."""
    chain = [f for f in pipeline.chain if f.name == ANTIVIRUS]
    return Pipeline(chain, pipeline.book, pipeline.ports, pipeline.budget)


async def judge(
    pipeline: Pipeline,
    raw: bytes,
    label: str,
    path: str,
    hostname: str,
    rescan: Pipeline | None = None,
) -> Outcome:
    """One labelled message through the pipeline (and its cleaned copy through `rescan`)."""
    out = Outcome(path, label)
    ctx = _context(raw, hostname)
    verdict = await pipeline.run(ctx)
    decision = verdict.decisions[0]
    av = verdict.results[next(iter(verdict.results))].get(ANTIVIRUS)
    if av is None:
        out.error = "the pipeline has no antivirus filter ([clamav] is not configured)"
        return out
    out.action = str(decision.action)
    if av.error is not None:
        out.error = av.error
        return out
    virus = decision.virus
    out.viruses = virus.viruses if virus else ()
    unscannable = bool(av.facts.get("unscannable"))
    # clamd's "Heuristics.Limits.Exceeded" is a detection too: the copy is held, not passed
    out.detected = bool(out.viruses) or unscannable
    out.flagged = bool(out.viruses or unscannable or decision.rendering.replace_parts)
    if label != "virus" or not out.detected:
        return out
    if decision.action not in DELIVERABLE or not (virus and virus.cleaned):
        out.notes.append(f"not cleaned: {decision.action}")
        return out
    copy = render(ctx, decision.rendering, [EVAL_RCPT], hostname, quarantine_id="eval.q0")
    again = await (rescan or pipeline).run(_context(copy, hostname))
    residue = [i.virus for i in _infections(again)]
    if residue:
        out.notes.append("cleaned copy still infected: " + ", ".join(residue))
        return out
    infected = {i.part_id for i in _infections(verdict)}
    before = {p.part_id: p.payload for p in ctx.parts if p.part_id not in infected}
    after = {p.part_id: p.payload for p in again.ctx.parts}
    damaged = sorted(pid for pid, data in before.items() if after.get(pid) != data)
    if damaged:
        out.notes.append("parts changed by cleaning: " + ", ".join(damaged))
        return out
    out.cleaned = True
    return out


async def evaluate_corpus(
    pipeline: Pipeline,
    files: dict[str, list[Path]],
    hostname: str,
    concurrency: int = 4,
    progress: Callable[[int], None] | None = None,
) -> list[Outcome]:
    gate = asyncio.Semaphore(concurrency)
    rescan = antivirus_only(pipeline)

    async def one(label: str, path: Path) -> Outcome:
        async with gate:
            raw = await asyncio.to_thread(path.read_bytes)
            try:
                return await judge(pipeline, raw, label, str(path), hostname, rescan)
            except Exception as exc:  # noqa: BLE001 - one bad file must not end the run
                return Outcome(str(path), label, error=f"{exc.__class__.__name__}: {exc}")
            finally:
                if progress is not None:
                    progress(1)

    tasks = [one(label, p) for label, paths in files.items() for p in paths]
    return list(await asyncio.gather(*tasks))


def summarise(outcomes: Sequence[Outcome], elapsed: float, signatures: str | None) -> dict:
    viruses = [o for o in outcomes if o.label == "virus"]
    cleans = [o for o in outcomes if o.label == "clean"]
    detected = sum(o.detected for o in viruses)
    cleaned = sum(o.cleaned for o in viruses)
    false_alarms = sum(o.flagged for o in cleans)

    def rate(k: int, n: int) -> float | None:
        return round(k / n, 6) if n else None

    def ci(k: int, n: int) -> list[float]:
        return [round(x, 6) for x in wilson(k, n)]

    return {
        "virus": len(viruses),
        "clean": len(cleans),
        "detected": detected,
        "cleaned": cleaned,
        "false_alarms": false_alarms,
        "errors": sum(o.error is not None for o in outcomes),
        "detection_rate": rate(detected, len(viruses)),
        "detection_rate_ci95": ci(detected, len(viruses)),
        "clean_rate": rate(cleaned, len(viruses)),
        "clean_rate_ci95": ci(cleaned, len(viruses)),
        "false_alarm_rate": rate(false_alarms, len(cleans)),
        "false_alarm_rate_ci95": ci(false_alarms, len(cleans)),
        "signatures": signatures,
        "elapsed_s": round(elapsed, 2),
        "missed": [o.path for o in viruses if not o.detected][:50],
        "not_cleaned": [
            {"file": o.path, "why": "; ".join(o.notes) or o.error or ""}
            for o in viruses
            if o.detected and not o.cleaned
        ][:50],
        "false_alarm_files": [
            {"file": o.path, "viruses": list(o.viruses), "action": o.action}
            for o in cleans
            if o.flagged
        ][:50],
        "error_files": [{"file": o.path, "error": o.error} for o in outcomes if o.error][:50],
    }


async def run_eval(
    pipeline: Pipeline,
    root: Path,
    hostname: str,
    concurrency: int = 4,
    progress: Callable[[int], None] | None = None,
) -> dict:
    files = corpus_files(root)
    started = time.perf_counter()
    outcomes = await evaluate_corpus(pipeline, files, hostname, concurrency, progress)
    signatures = None
    clamd = pipeline.ports.clamd
    if clamd is not None:
        try:
            signatures = (await clamd.version()).raw
        except Exception:  # noqa: BLE001 - the summary still stands without it
            signatures = None
    return summarise(outcomes, time.perf_counter() - started, signatures)
