"""Compare model settings over several random splits (recall at 1%, 0.1%, 0.01% FPR).

    .venv/bin/python bench/classifier_splits.py [--corpora DIR] [--salts a,b,c]
        [--config log_loss:3e-6:10 --config log_loss:1e-6:1 ...]

Recall at 0.01% on one split hinges on its one or two highest-scoring ham, so settings
are compared on the mean over splits made with different salts (same dedup and 20%
rule as `mailwarden train`). A config is loss:alpha:ham_weight. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.paths import corpora_dir
from training import dataset, evaluate
from training.corpus import parse_spec
from training.model import SpamModel
from training.train import TrainOptions, fit, inverse_document_frequency, make_estimator

TARGETS = (0.01, 0.001, 0.0001)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=corpora_dir())
    parser.add_argument("--salts", default="a,b,c")
    parser.add_argument("--config", action="append", default=[])
    args = parser.parse_args()
    configs = args.config or ["log_loss:1e-6:1", "log_loss:3e-6:10"]
    specs = [parse_spec(str(p)) for p in sorted(args.corpora.glob("*.tar.gz"))]
    data = dataset.load(specs, jobs=2)
    results: dict[str, list[list[float]]] = {c: [] for c in configs}
    for salt in args.salts.split(","):
        dataset.split_bucket.__defaults__ = (salt.encode(),)  # the salt of is_validation
        split = dataset.split(data)
        X_train, y_train = data.X[split.train], data.y[split.train]
        X_val, y_val = data.X[split.validation], data.y[split.validation]
        idf = inverse_document_frequency(X_train)
        for config in configs:
            loss, alpha, ham_weight = config.split(":")
            options = TrainOptions(loss=loss, alpha=float(alpha), ham_weight=float(ham_weight))
            model = SpamModel(make_estimator(options), {}, idf)
            fit(model.estimator, model.transform(X_train), y_train, options.epochs)
            scores = model.decision(X_val)
            ham, spam = scores[y_val == 0], scores[y_val == 1]
            results[config].append([evaluate.recall_at_fpr(ham, spam, t) for t in TARGETS])
    out = {
        config: {
            "per_split": dict(zip(args.salts.split(","), rows, strict=True)),
            "mean_recall_at_fpr": dict(
                zip(
                    [f"{t:g}" for t in TARGETS],
                    np.mean(rows, axis=0).round(4).tolist(),
                    strict=True,
                )
            ),
        }
        for config, rows in results.items()
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
