"""`mailwarden train`: fit a model on labelled corpora and write it with skops."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from gateway.cli import CliError


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
        required=True,
        metavar="PATH",
        help="a labelled corpus; repeat for several",
    )
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
    from tqdm import tqdm

    from training.corpus import CorpusError, parse_spec
    from training.model import ModelError
    from training.train import TrainOptions, train, update

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
    try:
        specs = [parse_spec(text) for text in args.corpus]
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
        reading = tqdm(desc="reading", unit="msg", file=sys.stderr, disable=None)
        fitting: list[Any] = []

        def on_epoch(done: int) -> None:
            """The first call (0, before fitting) swaps the reading bar for the epochs bar."""
            if not fitting:
                reading.close()
                fitting.append(
                    tqdm(
                        desc="fitting",
                        unit="epoch",
                        total=args.epochs * fits,
                        file=sys.stderr,
                        disable=None,
                    )
                )
            fitting[0].update(done)

        try:
            if args.update:
                model = update(args.update, specs, options, on_read=reading.update)
            else:
                model = train(specs, options, on_read=reading.update, on_epoch=on_epoch)
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
