"""CPU of the gateway's MIME reading per message, stage by stage, on bench/chain.py's sample.

For each message, as the gateway reads it (line endings normalised, the mbox line and
dot-stuffing as the wire carries them): the parse (`MessageContext.message`), the leaf
parts, the text of every text part (HTML parsed), the URLs, and the header values the
ledger, events, intake and message checks ask for. The stages run in that order on
fresh contexts, so each one's figure is its own work. Prints JSON: microseconds of
process CPU per message, each stage's best round.

    .venv/bin/python bench/mime_stages.py [--messages 1600] [--rounds 3]
    .venv/bin/python bench/mime_stages.py --variant before=OTHER   # and another checkout's

With --variant, each round runs every variant once, in turn, each in its own process
(its checkout's code first on the path) on the same messages: best round per stage.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HEADERS = ("From", "Subject", "Message-ID", "Message-ID", "Subject", "Date")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, help="read the gateway's code from this checkout")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--raws", type=Path, help=argparse.SUPPRESS)  # the messages, pickled
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(here))
    if args.raws is not None:
        raws = pickle.loads(args.raws.read_bytes())
    else:
        from bench.chain import sample
        from bench.smtpload import tagged, wire_form

        sent = [wire_form(tagged(f"m{i}", raw)) for i, (_, raw) in enumerate(sample(args.messages))]
        raws = [raw.replace(b"\r\n..", b"\r\n.") for raw in sent]  # as read: unstuffed
    if args.variant:
        compare(args, raws, here)
        return
    print(json.dumps(measure(args.tree, raws, args.rounds), indent=2))


def compare(args: argparse.Namespace, raws: list[bytes], here: Path) -> None:
    variants = [("this", here)] + [
        (name, Path(tree)) for name, tree in (v.split("=", 1) for v in args.variant)
    ]
    best: dict[str, dict[str, float]] = {name: {} for name, _ in variants}
    with tempfile.TemporaryDirectory() as tmp:
        stored = Path(tmp) / "raws.pickle"
        stored.write_bytes(pickle.dumps(raws))
        for _ in range(args.rounds):
            for name, tree in variants:
                python = tree / ".venv" / "bin" / "python"
                command = [str(python), __file__, "--raws", str(stored), "--rounds", "1"]
                command += ["--tree", str(tree)]
                done = subprocess.run(command, check=True, capture_output=True, env=os.environ)
                stages = json.loads(done.stdout)["microseconds_per_message"]
                for stage, spent in stages.items():
                    best[name][stage] = min(best[name].get(stage, spent), spent)
    base = variants[0][0]
    out = {
        "benchmark": "mime_stages",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "messages": len(raws),
        "rounds": args.rounds,
        "microseconds_per_message": {
            k: {s: round(v, 1) for s, v in b.items()} for k, b in best.items()
        },
        "total": {k: round(sum(b.values()), 1) for k, b in best.items()},
        "ratios": {
            f"{name}/{base}": {
                s: round(best[name][s] / best[base][s], 2) for s in best[base] if best[base][s]
            }
            for name, _ in variants[1:]
        },
    }
    print(json.dumps(out, indent=2))


def measure(tree: Path | None, raws: list[bytes], rounds: int) -> dict:
    if tree is not None:
        sys.path.insert(0, str(tree.resolve()))
        for name in [m for m in sys.modules if m == "gateway" or m.startswith("gateway.")]:
            del sys.modules[name]
    from gateway.mail.received import received_context
    from gateway.model import Envelope

    envelope = Envelope("bench@sender.test", ("bob@example.test",), "192.0.2.1", "client.test")
    best: dict[str, float] = {}
    for _ in range(rounds):
        ctxs = [received_context("q", envelope, raw, datetime.now(UTC)) for raw in raws]
        stages = {
            "parse": lambda c: c.message,
            "parts": lambda c: c.parts,
            "text": lambda c: [p.text() for p in c.parts if p.is_text],
            "urls": lambda c: c.urls,
            "headers": lambda c: [c.header(h) for h in HEADERS],
        }
        for name, stage in stages.items():
            started = time.process_time()
            for ctx in ctxs:
                stage(ctx)
            spent = (time.process_time() - started) * 1e6 / len(ctxs)
            best[name] = min(best.get(name, spent), spent)
    return {
        "benchmark": "mime_stages",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "tree": str(tree or Path(__file__).resolve().parents[1]),
        "messages": len(raws),
        "microseconds_per_message": {k: round(v, 1) for k, v in best.items()},
        "total": round(sum(best.values()), 1),
    }


if __name__ == "__main__":
    main()
