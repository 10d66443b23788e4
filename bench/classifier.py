"""Classifier speed: messages per second on one core, and training time on the corpora.

    .venv/bin/python bench/classifier.py [--corpora DIR] [--sample 3000] [--no-training]

Prints one JSON document. Classification runs the gateway's path (MessageContext parsed
with policy.default, leaf parts, features, linear model) in one thread, on a sample
taken evenly from every corpus; its rate is given per CPU second (what one core does)
and per wall second (what it did on this machine, which other jobs may share).
Training is `mailwarden train` on every corpus with the default options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from filters.classifier import ClassifierFilter, load_model
from gateway.model import Envelope, MessageContext
from gateway.paths import corpora_dir
from training.corpus import parse_spec, read_corpus


def sample(corpora: list[Path], per_corpus: int) -> list[bytes]:
    """Every k-th message of each corpus, so ham and spam of every source are in it."""
    out = []
    for path in corpora:
        messages = [m.raw for m in read_corpus(parse_spec(str(path)))]
        step = max(1, len(messages) // per_corpus)
        out.extend(messages[::step][:per_corpus])
    return out


def _rate(count: int, cpu: float, wall: float) -> dict:
    return {
        "messages_per_cpu_second": round(count / cpu, 1),
        "messages_per_wall_second": round(count / wall, 1),
    }


def bench_classify(raws: list[bytes], model_path: Path | None = None) -> dict:
    """Three views of one core's classification speed (see docs/classifier.md)."""
    filt = ClassifierFilter(load_model(model_path))
    model = filt.model
    env = Envelope(mail_from="a@b.example", rcpt_tos=("c@d.example",), client_ip="192.0.2.1")
    now = datetime.now(UTC)
    out: dict = {
        "messages": len(raws),
        "mean_bytes": round(sum(map(len, raws)) / len(raws)),
        "model_version": model.version,
        "features_version": model.features_version,
    }
    # 1. standalone: raw bytes -> score (compat32 parse, features, model), as `eval` does
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for raw in raws:
        model.score_raw(raw)
    out["standalone"] = _rate(len(raws), time.process_time() - cpu0, time.perf_counter() - wall0)
    # 2. in the gateway, whole: MessageContext parsed with policy.default, parts, filter.score
    contexts = [MessageContext(f"q{i}", env, raw, now) for i, raw in enumerate(raws)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for ctx in contexts:
        filt.score(ctx)
    out["gateway_with_parsing"] = _rate(
        len(raws), time.process_time() - cpu0, time.perf_counter() - wall0
    )
    # 3. in the gateway, the classifier's own share: the parse and MIME parts are shared
    #    with the other filters (message checks read them anyway), so they are done first
    contexts = [MessageContext(f"r{i}", env, raw, now) for i, raw in enumerate(raws)]
    for ctx in contexts:
        _ = ctx.parts
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for ctx in contexts:
        filt.score(ctx)
    out["gateway_classifier_share"] = _rate(
        len(raws), time.process_time() - cpu0, time.perf_counter() - wall0
    )
    return out


def bench_train(corpora: list[Path]) -> dict:
    from training.train import TrainOptions, train

    cpu0, wall0 = time.process_time(), time.perf_counter()
    children0 = os.times().children_user + os.times().children_system
    model = train([parse_spec(str(p)) for p in corpora], TrainOptions(jobs=2))
    wall = time.perf_counter() - wall0
    children = os.times().children_user + os.times().children_system - children0
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "m.skops")
        size = (Path(tmp) / "m.skops").stat().st_size
    return {
        "messages": model.metadata["split"]["messages_read"],
        "wall_seconds": round(wall, 1),
        "cpu_seconds_main": round(time.process_time() - cpu0, 1),
        "cpu_seconds_workers": round(children, 1),
        "jobs": 2,
        "model_bytes": size,
        "validation_recall": model.metadata["validation"]["spam_recall"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=corpora_dir())
    parser.add_argument("--sample", type=int, default=3000, help="messages to classify")
    parser.add_argument("--no-training", action="store_true")
    parser.add_argument("--model", type=Path, help="model to score with (default: shipped)")
    args = parser.parse_args()
    corpora = sorted(args.corpora.glob("*.tar.gz"))
    if not corpora:
        print(json.dumps({"error": f"no corpora in {args.corpora}"}))
        return 2
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "note": "shared 2-core machine: figures are noisy; CPU-second rates are steadier",
        "classify": bench_classify(
            sample(corpora, max(1, args.sample // len(corpora))), args.model
        ),
    }
    if not args.no_training:
        result["train"] = bench_train(corpora)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
