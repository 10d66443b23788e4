"""`mailwarden train`: fit a model on labelled corpora and write it with skops."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from gateway.cli import CliError
from gateway.cli.common import add_config_argument
from gateway.cli.progress import Progress, add_quiet_argument
from gateway.config import load_settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the spam classifier on labelled corpora",
        description="Train on corpora (tar.gz with ham/ and spam/, a directory with ham/ and "
        "spam/ (plain files, Maildir or mbox), or ham=PATH / spam=PATH), choose the "
        "threshold on held-out ham and write the model with skops.",
    )
    p.add_argument(
        "--corpus",
        action="append",
        default=[],
        metavar="PATH",
        help="a labelled corpus; repeat for several (needed unless --from-feedback)",
    )
    p.add_argument(
        "--from-feedback",
        metavar="YYYY-MM",
        help="with --update: also learn from the feedback given in that month (user and "
        "staff reports, confirmations, releases), using the stored originals (quarantine "
        "copies, mail forwarded to the report addresses); needs --config for the ledger",
    )
    add_config_argument(p, required=False)
    add_quiet_argument(p)
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    p.add_argument(
        "--max-fpr",
        type=float,
        default=0.0001,
        help="false-positive rate allowed on held-out ham (default 0.0001)",
    )
    p.add_argument(
        "--update",
        metavar="MODEL",
        help="instead of training from zero, update MODEL with every message "
        "of the corpora (partial_fit, e.g. confirmed feedback); keeps its threshold",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes for feature extraction (default: up to 2)",
    )
    p.add_argument("--epochs", type=int, default=15, help="passes over the training data")
    p.add_argument("--alpha", type=float, default=3e-6, help="regularisation strength")
    p.add_argument(
        "--ham-weight",
        type=float,
        default=10.0,
        help="weight of a ham error relative to a spam error (default 10)",
    )
    p.add_argument(
        "--threshold-folds",
        type=int,
        default=5,
        metavar="K",
        help="choose the threshold on K-fold out-of-fold scores of the training side's ham "
        "(default 5: about four times the ham of the validation side, which then measures "
        "the threshold untouched); 0: on the validation side's ham",
    )
    p.add_argument(
        "--short-message-features",
        type=int,
        default=30,
        metavar="N",
        help="scale down messages with fewer than N distinct features, so a two-line note "
        "is not judged on two words (default 30; 0: off)",
    )
    p.add_argument(
        "--validation-percent",
        type=int,
        default=20,
        metavar="P",
        help="share of the deduplicated messages held out to measure the model (default 20); "
        "0: fit on every message, threshold and figures from the pooled out-of-fold scores",
    )
    p.add_argument("--name", default="mailwarden", help="model name (prefix of its version)")
    p.add_argument("--json", action="store_true", help="print the model metadata as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.max_fpr < 1:
        raise CliError(f"--max-fpr: must be between 0 and 1, got {args.max_fpr}")
    if args.jobs < 1 or args.epochs < 1:
        raise CliError("--jobs and --epochs must be at least 1")
    if args.threshold_folds < 0 or args.threshold_folds == 1 or args.threshold_folds > 20:
        raise CliError("--threshold-folds: 0 (validation side) or 2 to 20")
    if not 0 <= args.validation_percent < 100:
        raise CliError("--validation-percent: 0 to 99")
    if args.validation_percent == 0 and args.threshold_folds < 2:
        raise CliError("--validation-percent 0 needs --threshold-folds 2 or more")
    if args.short_message_features < 0:
        raise CliError("--short-message-features: must be 0 or more")
    if args.from_feedback and not args.update:
        raise CliError("--from-feedback: only with --update MODEL (the threshold is kept)")
    if not args.corpus and not args.from_feedback:
        raise CliError("give --corpus PATH (or --update MODEL --from-feedback YYYY-MM)")
    with tempfile.TemporaryDirectory(prefix="mailwarden-feedback-") as scratch:
        return _run(args, Path(scratch))


def _run(args: argparse.Namespace, scratch: Path) -> int:
    from training.corpus import CorpusError, parse_spec
    from training.model import ModelError
    from training.train import TrainOptions, train, update

    try:
        specs = [parse_spec(text) for text in args.corpus]
        if args.from_feedback:
            specs.append(parse_spec(str(_feedback_corpus(args, scratch))))
        options = TrainOptions(
            max_fpr=args.max_fpr,
            alpha=args.alpha,
            epochs=args.epochs,
            jobs=args.jobs,
            name=args.name,
            ham_weight=args.ham_weight,
            threshold_folds=args.threshold_folds,
            short_message_features=args.short_message_features,
            validation_percent=args.validation_percent,
        )
        fits = 1 + (args.threshold_folds if args.threshold_folds >= 2 else 0)
        reading = Progress("train", "read", quiet=args.quiet)
        fitting: list[Any] = []

        def on_epoch(done: int) -> None:
            """The first call (0, before fitting) ends the reading lines, starts the epochs'."""
            if not fitting:
                reading.close()
                fitting.append(
                    Progress(
                        "train", "fitted", unit="epochs", total=args.epochs * fits, quiet=args.quiet
                    )
                )
            fitting[0].update(done)

        try:
            if args.update:
                model = update(args.update, specs, options, on_read=reading.update)
            else:
                model = train(specs, options, on_read=reading.update, on_epoch=on_epoch)
        except BaseException:
            for bar in [reading, *fitting]:
                bar.abandon()
            raise
        finally:
            reading.close()
            for bar in fitting:
                bar.close()
        version = model.save(args.out)
    except (CorpusError, ModelError) as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:
        raise CliError(f"cannot train: {exc}") from None
    except OSError as exc:
        raise CliError(f"{args.out}: cannot write model: {exc.strerror}") from None
    if args.json:
        print(json.dumps(model.metadata, indent=2, sort_keys=True))
    else:
        print(summary(model.metadata, args.out, version))
    return 0


def _feedback_corpus(args: argparse.Namespace, scratch: Path) -> Path:
    """The month's feedback originals as a ham/ and spam/ directory of .eml files."""
    from gateway.config import ConfigError
    from gateway.report.sla import month_bounds
    from gateway.store.db import create_schema, make_engine
    from gateway.store.feedback_mail import feedback_mail

    if args.config is None:
        raise CliError("--from-feedback: give --config FILE (the ledger is in [store] url)")
    try:
        start, end = month_bounds(args.from_feedback)
    except ValueError as exc:
        raise ConfigError(f"--from-feedback: {exc}") from None
    settings = load_settings(args.config)
    engine = make_engine(settings.store.url)
    try:
        create_schema(engine)
        found = feedback_mail(engine, start, end)
    finally:
        engine.dispose()
    counts = found.counts()
    if not found.examples:
        raise CliError(
            f"--from-feedback {args.from_feedback}: no feedback with a stored original "
            f"({', '.join(f'{k} {v}' for k, v in counts.items())})"
        )
    for index, (label, raw) in enumerate(found.examples):
        folder = scratch / label
        folder.mkdir(exist_ok=True)
        (folder / f"{index:06d}.eml").write_bytes(raw)
    if not args.quiet:
        print(
            f"mailwarden train: feedback of {args.from_feedback}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items()),
            file=sys.stderr,
        )
    return scratch


def summary(meta: dict[str, Any], path: str, version: str) -> str:
    """A few lines a person reads after training."""
    lines = [f"wrote {path} (version {version})"]
    split = meta.get("split")
    if split:
        tr, va = split["train"], split["validation"]
        lines.append(
            f"messages read {split['messages_read']}, near-duplicates dropped "
            f"{split['near_duplicates_dropped']}; train {tr['ham']} ham / {tr['spam']} spam, "
            f"validation {va['ham']} ham / {va['spam']} spam"
        )
    cv = meta.get("cross_validation")
    if cv:
        lines.append(
            f"threshold {meta['threshold']:.4f}: {meta.get('threshold_rule', '')}; there: "
            f"spam recall {cv['spam_recall']:.4f} {_ci(cv['spam_recall_ci95'])}, "
            f"false positives {cv['false_positives']}/{cv['ham']}, AUC {cv['auc']:.5f}"
        )
        if not meta.get("validation"):
            for name, per in cv.get("per_corpus", {}).items():
                recall = "n/a" if per["spam_recall"] is None else f"{per['spam_recall']:.4f}"
                lines.append(
                    f"  {name} (out of fold): {per['ham']} ham, {per['spam']} spam, "
                    f"recall {recall}, false positives {per['false_positives']}"
                )
    val = meta.get("validation")
    if val:
        where = "validation side" if cv else f"max FPR {meta['max_fpr']:g} on held-out ham"
        lines.append(
            f"threshold {meta['threshold']:.4f} ({where}): "
            f"spam recall {val['spam_recall']:.4f} {_ci(val['spam_recall_ci95'])}, "
            f"false positives {val['false_positives']}/{val['ham']} "
            f"(one-sided 95% upper bound {val['fp_rate_upper95']:.3g}), AUC {val['auc']:.5f}"
        )
        for name, per in val.get("per_corpus", {}).items():
            recall = "n/a" if per["spam_recall"] is None else f"{per['spam_recall']:.4f}"
            lines.append(
                f"  {name}: {per['ham']} ham, {per['spam']} spam, recall {recall}, "
                f"false positives {per['false_positives']}"
            )
        lines.extend(f"note: {note}" for note in val.get("notes", []))
    for upd in meta.get("updates", [])[-1:]:
        lines.append(f"updated with {upd['ham']} ham and {upd['spam']} spam (threshold kept)")
    return "\n".join(lines)


def _ci(pair: list[float] | None) -> str:
    return "" if not pair else f"(95% CI {pair[0]:.4f}-{pair[1]:.4f})"
