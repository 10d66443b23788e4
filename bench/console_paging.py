"""Console paging benchmark: the quarantine list at 100,000 held items.

Fills a fresh SQLite database (or `--url` PostgreSQL schema) with N held items over
three domains and 30 days, then times what staff do through the same action the
console calls (gateway.actions.quarantine.list_page): the first page, a page far
down (keyset cursor after walking 100 pages), filtered pages (one domain's staff,
sender text, subject text, kind + score), and prints JSON. The target (issue 12):
every page well under 100 ms. Not a test: `python bench/console_paging.py [--items N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.actions import quarantine as actions
from gateway.actions.common import Actor
from gateway.store import ledger, quarantine
from gateway.store.db import create_schema, make_engine
from gateway.store.quarantine_query import Filters

DOMAINS = ("a.example", "b.example", "c.example")


def fill(engine, count: int) -> None:
    rng = random.Random(12)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    body = zlib.compress(b"Subject: x\r\n\r\nbody\r\n")
    batch_m, batch_q = [], []
    for n in range(count):
        when = start + timedelta(seconds=rng.randrange(30 * 86400))
        qid = f"B{n:09d}"
        domain = DOMAINS[n % 3]
        batch_m.append(
            {
                "id": qid, "node": "bench", "received_at": when, "decided_at": when,
                "client_ip": "192.0.2.1", "mail_from": f"s{n % 5000}@spam{n % 97}.test",
                "size": 20, "sha256": "0" * 64, "outcome": "accepted",
            }
        )  # fmt: skip
        batch_q.append(
            {
                "id": f"{qid}.q0", "message_id": qid, "domain": domain,
                "rcpts": [f"u{n % 300}@{domain}"], "kind": "spam" if n % 10 else "virus",
                "reason": "score above quarantine threshold", "created_at": when, "size": 20,
                "data": body, "status": quarantine.HELD, "mail_from": batch_m[-1]["mail_from"],
                "subject": f"offer number {n}", "score": round(rng.uniform(10, 30), 2),
            }
        )  # fmt: skip
        if len(batch_m) == 5000:
            _flush(engine, batch_m, batch_q)
    _flush(engine, batch_m, batch_q)


def _flush(engine, batch_m, batch_q) -> None:
    if batch_m:
        with engine.begin() as conn:
            conn.execute(ledger.messages.insert(), batch_m)
            conn.execute(quarantine.quarantine.insert(), batch_q)
    batch_m.clear()
    batch_q.clear()


def timed(fn, repeat: int = 5) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 2), result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--url", help="a database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = args.url or f"sqlite:///{scratch}/bench.db"
        engine = make_engine(url)
        create_schema(engine)
        t0 = time.perf_counter()
        fill(engine, args.items)
        fill_s = time.perf_counter() - t0
        op = Actor.cli("bench")
        staff = Actor("staff", "abuse-staff", ("b.example",), "bench")
        results = {}
        ms, first = timed(lambda: actions.list_page(engine, op, Filters(), None, 50))
        results["first_page_ms"] = ms
        cursor = first.next
        for _ in range(99):
            cursor = actions.list_page(engine, op, Filters(), cursor, 50).next
        results["page_101_ms"], _ = timed(lambda: actions.list_page(engine, op, Filters(), cursor))
        results["staff_one_domain_first_page_ms"], _ = timed(
            lambda: actions.list_page(engine, staff, Filters(), None, 50)
        )
        results["sender_text_ms"], _ = timed(
            lambda: actions.list_page(engine, op, Filters(sender="s4999@"), None, 50)
        )
        results["subject_text_rare_ms"], _ = timed(
            lambda: actions.list_page(engine, op, Filters(subject="number 77777"), None, 50)
        )
        results["kind_and_score_ms"], _ = timed(
            lambda: actions.list_page(engine, op, Filters(kind="virus", min_score=29), None, 50)
        )
        engine.dispose()
    print(
        json.dumps(
            {
                "items": args.items,
                "backend": url.split(":", 1)[0],
                "fill_s": round(fill_s, 1),
                **results,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "load_1m": round(os.getloadavg()[0], 2),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
