"""Pooled k-fold cross-validation of the training recipe over all deduplicated mail.

    .venv/bin/python bench/classifier_cv.py [--corpora DIR] [--features mw-features-3]
        [--folds 5] [--out report.json]

Every corpus in --corpora (in the training command's order) is read and deduplicated as
`mailwarden train` does; the messages fall into folds by sha256(mailwarden-fold-1 +
fingerprint), each fold is scored by a model (idf included) fitted on the others, and
the pooled out-of-fold scores are reported by training.crossval: the threshold that
keeps 0.01% of all out-of-fold ham above it, spam recall there with Clopper-Pearson
intervals pooled, per corpus and per language, AUC, recall at 0.1%, and the
highest-scoring ham and lowest-scoring spam with their subjects. Prints JSON (and
writes it to --out, so a long run is not lost).
"""

from __future__ import annotations

import argparse
import email
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.paths import corpora_dir
from training import crossval, dataset
from training.corpus import parse_spec, read_corpus
from training.features import FEATURES_VERSION, FEATURES_VERSIONS
from training.train import TrainOptions, fold_of, group_offsets, offsets_of, out_of_fold_scores

ORDER = ("spamassassin", "csdmc2010", "trec07p", "enron_spam", "trec06c_subset", "phishing_pot")


def corpus_paths(directory: Path) -> list[Path]:
    """The corpora in the training command's order (the first copy of a duplicate wins)."""
    found = sorted(directory.glob("*.tar.gz"))
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(found, key=lambda p: (rank.get(p.name.removesuffix(".tar.gz"), 99), p.name))


def subjects(paths: list[Path], wanted: set[str]) -> dict[str, str]:
    """sha256 -> Subject of the wanted messages (for the error lists)."""
    out = {}
    for path in paths:
        for message in read_corpus(parse_spec(str(path))):
            sha = hashlib.sha256(message.raw).hexdigest()
            if sha in wanted:
                subject = email.message_from_bytes(message.raw[:20000]).get("subject", "")
                out[sha] = " ".join(str(subject).split())[:100]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=corpora_dir())
    parser.add_argument("--features", default=FEATURES_VERSION, choices=FEATURES_VERSIONS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--short-message-features", type=int, default=30)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--no-group-offsets",
        dest="group_offsets",
        action="store_false",
        help="one threshold for all mail (no per-group offsets, training.groups)",
    )
    args = parser.parse_args()
    started = time.time()
    paths = corpus_paths(args.corpora)
    data = dataset.load([parse_spec(str(p)) for p in paths], jobs=2, version=args.features)
    split = dataset.split(data, percent=0)
    rows = split.train
    X, y = data.X[rows], data.y[rows]
    fingerprints = [data.fingerprint[r] for r in rows]
    options = TrainOptions(short_message_features=args.short_message_features)
    raw_scores = out_of_fold_scores(X, y, fold_of(fingerprints, args.folds), options)
    corpora = data.corpus[rows]
    languages = [data.languages[r] for r in rows]
    groups = np.asarray([data.groups[r] for r in rows], dtype=object)
    offsets = group_offsets(raw_scores, y, groups, options.max_fpr) if args.group_offsets else {}
    scores = raw_scores + offsets_of(offsets, groups)
    result = crossval.report(y, scores, corpora, languages, options.max_fpr, groups)
    result["group_offsets"] = offsets
    if offsets:
        result["without_group_offsets"] = crossval.report(
            y, raw_scores, corpora, languages, options.max_fpr, groups
        )
    worst = crossval.hardest(y, scores, 15)
    names = subjects(paths, {data.sha256[rows[i]] for kind in worst.values() for i in kind})
    result["hardest"] = {
        kind: [
            {
                "corpus": str(corpora[i]),
                "score": round(float(scores[i]), 3),
                "subject": names.get(data.sha256[rows[i]], ""),
            }
            for i in items
        ]
        for kind, items in worst.items()
    }
    result["features"] = args.features
    result["folds"] = args.folds
    result["messages"] = {"ham": int((y == 0).sum()), "spam": int((y == 1).sum())}
    result["seconds"] = round(time.time() - started)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
