"""`mailwarden eval`: measure a model on labelled mail it has not seen."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli import CliError
from gateway.cli.progress import Progress, add_quiet_argument

CONTENT_FILTERS = (
    "classifier",
    "rules",
)  # as gateway.evaluation.classifier (not imported: CLI start-up)
DEFAULT_RCPT = "user@eval.invalid"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate the spam classifier on labelled corpora",
        description="Score labelled corpora and report spam recall, false positives with "
        "95%% intervals, AUC, recall at fixed false-positive rates and speed.",
    )
    p.add_argument(
        "--corpus",
        action="append",
        required=True,
        metavar="PATH",
        help="a labelled corpus (as for train); repeat for several",
    )
    p.add_argument(
        "--model",
        metavar="MODEL",
        help="model file (default: the baseline shipped in rules/models/)",
    )
    p.add_argument(
        "--split",
        choices=("auto", "all", "validation"),
        default="auto",
        help="auto (default): for corpora the model was trained on, score only "
        "its held-out side; all: every message; validation: held-out side always",
    )
    p.add_argument(
        "--model-only",
        action="store_true",
        help="judge by the model's score against its threshold alone, instead of running "
        "the content filters and the policy (the default)",
    )
    p.add_argument(
        "--filters",
        default=",".join(CONTENT_FILTERS),
        metavar="NAMES",
        help="content filters to run (default: %(default)s; add 'message' for the core "
        "header checks, which score Enron-style mail without From/Date as suspicious)",
    )
    p.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="gateway configuration (weights, thresholds, classifier model)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--report",
        action="store_true",
        help="also write every verdict to a scratch ledger (the corpus labels as feedback) "
        "and print the monthly service-agreement report of it, as `mailwarden report` would",
    )
    p.add_argument(
        "--ledger",
        metavar="FILE",
        help="with --report: keep the scratch ledger in this SQLite file (default: a "
        "temporary one); `mailwarden report` can read it again",
    )
    p.add_argument("--profile", metavar="NAME", help="with --report: the guarantee profile")
    p.add_argument(
        "--rcpt",
        default=DEFAULT_RCPT,
        metavar="ADDRESS",
        help="the recipient every message is judged for (its domain's policy applies; "
        "default %(default)s)",
    )
    add_quiet_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.config import Settings, load_settings
    from gateway.evaluation.classifier import score_corpora_pipeline
    from gateway.pipeline.chain import FILTER_NAMES
    from training.corpus import CorpusError, parse_spec
    from training.model import ModelError, SpamModel, default_model_path
    from training.scoring import report, score_corpora

    settings = load_settings(args.config) if args.config else Settings()
    if args.report and args.model_only:
        raise CliError("--report needs the pipeline: leave out --model-only")
    if args.ledger and not args.report:
        raise CliError("--ledger: only with --report")
    if args.model:
        section = settings.classifier.model_copy(update={"model": args.model, "enabled": True})
        settings = settings.model_copy(update={"classifier": section})
    try:
        specs = [parse_spec(text) for text in args.corpus]
        model = SpamModel.load(settings.classifier.model or default_model_path())
        with Progress("eval", "scored", quiet=args.quiet) as bar, ScratchRun(args) as scratch:
            if not args.model_only:
                filters = [f.strip() for f in args.filters.split(",") if f.strip()]
                unknown = sorted(set(filters) - set(FILTER_NAMES))
                if unknown:
                    raise CliError(f"--filters: unknown filter {unknown[0]!r}")
                scored = score_corpora_pipeline(
                    settings, model, specs, args.split, bar.update, filters, scratch.sink, args.rcpt
                )
                scratch.finish(settings, args.profile)
            else:
                scored = score_corpora(model, specs, args.split, progress=bar.update)
    except (CorpusError, ModelError) as exc:
        raise CliError(str(exc)) from None
    if not scored.labels:
        why = "; ".join(f"{name}: {what}" for name, what in scored.selection.items())
        raise CliError(f"no messages to evaluate in the given corpora ({why})")
    tag = None
    if not args.model_only:
        tag = settings.policy.thresholds.tag
        if tag is None:
            raise CliError("policy.thresholds.tag is not set: nothing is judged spam")
    result = report(model, scored, tag)
    if args.json:
        if scratch.report is not None:
            result = {**result, "report": scratch.report}
        print(json.dumps(result, indent=2))
    else:
        print(text_report(result))
        if scratch.report is not None:
            from gateway.report.render_text import render_text

            print()
            sys.stdout.write(render_text(scratch.report))
    return 0


class ScratchRun:
    """eval --report: the scratch ledger the verdicts go to, and the report read back."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sink: Any = None
        self.report: dict[str, Any] | None = None
        self._tmp: Any = None
        self._engine: Any = None
        self._ledger: Any = None

    def __enter__(self) -> ScratchRun:
        if not self.args.report:
            return self
        import tempfile
        from pathlib import Path

        from gateway.evaluation.scratch_ledger import ScratchLedger
        from gateway.store.db import create_schema, make_engine

        if self.args.ledger:
            path = Path(self.args.ledger)
            if path.exists():
                raise CliError(f"--ledger {path}: exists already (give a new file)")
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="mailwarden-eval-")
            path = Path(self._tmp.name) / "ledger.db"
        self._engine = make_engine(f"sqlite:///{path}")
        create_schema(self._engine)
        self._ledger = ScratchLedger(self._engine)
        self.sink = self._ledger.add
        return self

    def finish(self, settings: Any, profile: str | None) -> None:
        if self._ledger is None:
            return
        from datetime import UTC, datetime

        from gateway.report.build import build_report

        self._ledger.flush()
        now = datetime.now(UTC)
        self.report = build_report(self._engine, settings, f"{now:%Y-%m}", profile=profile, now=now)

    def __exit__(self, *exc: object) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._tmp is not None:
            self._tmp.cleanup()


def text_report(r: dict[str, Any]) -> str:
    def line(name: str, m: dict[str, Any]) -> str:
        recall = "n/a" if m["spam_recall"] is None else f"{m['spam_recall']:.4f}"
        fpr = "n/a" if m["fp_rate"] is None else f"{m['fp_rate']:.5f}"
        return (
            f"{name}: {m['ham']} ham, {m['spam']} spam; spam recall {recall}, "
            f"false positives {m['false_positives']} (rate {fpr})"
        )

    if r["mode"] == "pipeline":
        head = f"content filters + policy (tag at {r['policy_tag']:g}), model {r['model_version']}"
    else:
        head = f"model {r['model_version']} alone, threshold {r['threshold']:.4f}"
    lines = [head, line("all", r)]
    if r["auc"] is not None:
        lines.append(
            f"AUC {r['auc']:.5f}; recall at FPR 0.001: {r['recall_at_fpr']['0.001']:.4f}, "
            f"at 0.0001: {r['recall_at_fpr']['0.0001']:.4f}"
        )
    lines.extend(line(f"  {n}", m) for n, m in r["per_corpus"].items())
    lines.extend(f"note: {n}" for n in r["notes"])
    lines.append(f"{r['messages_per_second']} messages/second (one core)")
    return "\n".join(lines)
