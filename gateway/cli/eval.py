"""`mailwarden eval`: measure a model on labelled mail it has not seen."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli import CliError

CONTENT_FILTERS = (
    "classifier",
    "rules",
)  # as gateway.evaluation.classifier (not imported: CLI start-up)


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gateway.config import Settings, load_settings
    from gateway.evaluation.classifier import score_corpora_pipeline
    from gateway.pipeline.chain import FILTER_NAMES
    from training.corpus import CorpusError, parse_spec
    from training.model import ModelError, SpamModel, default_model_path
    from training.scoring import report, score_corpora

    settings = load_settings(args.config) if args.config else Settings()
    if args.model:
        section = settings.classifier.model_copy(update={"model": args.model, "enabled": True})
        settings = settings.model_copy(update={"classifier": section})
    try:
        specs = [parse_spec(text) for text in args.corpus]
        model = SpamModel.load(settings.classifier.model or default_model_path())
        with tqdm(desc="scoring", unit="msg", file=sys.stderr, disable=None) as bar:
            if not args.model_only:
                filters = [f.strip() for f in args.filters.split(",") if f.strip()]
                unknown = sorted(set(filters) - set(FILTER_NAMES))
                if unknown:
                    raise CliError(f"--filters: unknown filter {unknown[0]!r}")
                scored = score_corpora_pipeline(
                    settings, model, specs, args.split, bar.update, filters
                )
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
        print(json.dumps(result, indent=2))
    else:
        print(text_report(result))
    return 0


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
