"""Report benchmark: `mailwarden report` over a generated month of 1,000,000 mails.

Generates a ledger (messages, recipients, feedback, heartbeats, signature versions)
for one month on SQLite and on PostgreSQL, then times `build_report` for all
domains and for one domain, and prints JSON. The target (issue 11): under 30 s on
each. Not a test: `python bench/report.py [--messages N] [--backends sqlite,postgresql]`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import settings_from_dict
from gateway.report.build import build_report
from gateway.report.sla import month_bounds
from gateway.store.db import create_schema, make_engine

DOMAINS = ["alpha.test", "beta.test", "gamma.test", "delta.test", "epsilon.test"]
MONTH = "2026-11"
CHUNK = 50_000
MESSAGE_COLUMNS = [
    "id",
    "node",
    "received_at",
    "decided_at",
    "client_ip",
    "mail_from",
    "message_id_header",
    "size",
    "sha256",
    "outcome",
    "virus_found",
    "tls",
]
RCPT_COLUMNS = [
    "message_id",
    "rcpt",
    "domain",
    "action",
    "score",
    "spam",
    "av_enabled",
    "av_mode",
    "virus_found",
    "cleaned",
    "original_kept",
    "status",
    "delivered_at",
    "attempts",
]


def _ts(when: datetime, sqlite: bool) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else when.isoformat()


def generate(count: int, seed: int, sqlite: bool):
    """(message rows, recipient rows) in chunks: a month's mix of verdicts."""
    rng = random.Random(seed)
    start, end = month_bounds(MONTH)
    span = (end - start).total_seconds()
    zero = "0" * 64
    messages, rcpts = [], []
    for n in range(count):
        received = start + timedelta(seconds=span * n / count)
        qid = f"{int(received.timestamp() * 1e6):013X}{n:08X}"
        r = rng.random()
        if r < 0.05:  # refused whole at SMTP as spam
            outcome, action, spam, status = "rejected", "reject", True, "rejected"
        elif r < 0.25:
            outcome, action, spam, status = "accepted", "quarantine", True, "quarantined"
        elif r < 0.29:
            outcome, action, spam, status = "accepted", "tag", True, "delivered"
        else:
            outcome, action, spam, status = "accepted", "accept", False, "delivered"
        virus = rng.random() < 0.001
        if virus:
            action, spam, status = "accept", False, "delivered"
        if status == "delivered" and rng.random() < 0.001:
            status = "bounced"
        deferred = status == "delivered" and rng.random() < 0.002
        delay = rng.uniform(3600, 7200) if deferred else rng.lognormvariate(0.3, 0.6)
        delivered = (
            _ts(received + timedelta(seconds=delay), sqlite) if status == "delivered" else None
        )
        messages.append(
            (
                qid,
                "node-a",
                _ts(received, sqlite),
                _ts(received, sqlite),
                "192.0.2.1",
                "sender@example.org",
                f"<{qid}@example.org>",
                10_000,
                zero,
                outcome,
                virus,
                False,
            )
        )
        for k in range(2 if rng.random() < 0.1 else 1):
            domain = DOMAINS[(n + k) % len(DOMAINS)] if rng.random() < 0.9 else DOMAINS[0]
            rcpts.append(
                (
                    qid,
                    f"user{rng.randrange(500)}@{domain}",
                    domain,
                    action,
                    20.0 if spam else 0.0,
                    spam,
                    True,
                    "detect" if virus and rng.random() < 0.1 else "clean",
                    virus,
                    virus,
                    virus,
                    status,
                    delivered,
                    3 if deferred else 1,
                )
            )
        if len(messages) >= CHUNK:
            yield messages, rcpts
            messages, rcpts = [], []
    if messages:
        yield messages, rcpts


def heartbeat_rows(sqlite: bool):
    start, end = month_bounds(MONTH)
    t = start
    while t < end:
        if not (start + timedelta(days=12, hours=3) <= t < start + timedelta(days=12, hours=4)):
            for node in ("node-a", "node-b"):
                yield (node, _ts(t, sqlite), True, True)
        t += timedelta(seconds=30)


def load_sqlite(path: Path, count: int) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA journal_mode=WAL")
    m = ",".join("?" * len(MESSAGE_COLUMNS))
    r = ",".join("?" * len(RCPT_COLUMNS))
    for messages, rcpts in generate(count, 1, sqlite=True):
        conn.executemany(
            f"INSERT INTO messages ({','.join(MESSAGE_COLUMNS)}) VALUES ({m})", messages
        )
        conn.executemany(f"INSERT INTO recipients ({','.join(RCPT_COLUMNS)}) VALUES ({r})", rcpts)
        conn.commit()
    conn.executemany(
        "INSERT INTO heartbeats (node, at, accepting, next_hop_ok) VALUES (?,?,?,?)",
        list(heartbeat_rows(True)),
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def _copy(cur, table: str, columns: list[str], rows) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow(["\\N" if v is None else v for v in row])
    buf.seek(0)
    cur.copy_expert(
        f"COPY {table} ({','.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf
    )


def load_postgres(engine, count: int) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for messages, rcpts in generate(count, 1, sqlite=False):
            _copy(cur, "messages", MESSAGE_COLUMNS, messages)
            _copy(cur, "recipients", RCPT_COLUMNS, rcpts)
            raw.commit()
        _copy(cur, "heartbeats", ["node", "at", "accepting", "next_hop_ok"], heartbeat_rows(False))
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def add_feedback_rows(engine, count: int) -> None:
    """A few thousand feedback events, as users and staff would send them."""
    from sqlalchemy import select

    from gateway.store import ledger
    from gateway.store.feedback import add_feedback

    rng = random.Random(2)
    with engine.begin() as conn:
        ids = list(conn.scalars(select(ledger.messages.c.id).limit(count * 50)))
        for qid in rng.sample(ids, min(count, len(ids))):
            add_feedback(conn, qid, rng.choice(("spam", "ham", "virus")), source="bench")


def time_report(engine, settings) -> dict:
    out = {}
    for label, domain in (("all_domains_s", None), ("one_domain_s", DOMAINS[1])):
        t0 = time.perf_counter()
        report = build_report(
            engine, settings, MONTH, domain=domain, now=datetime(2026, 12, 5, tzinfo=UTC)
        )
        json.dumps(report)
        out[label] = round(time.perf_counter() - t0, 2)
        if domain is None:
            out["recipients_counted"] = report["overall"]["counts"]["recipients"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    settings = settings_from_dict({"domains": {"accept": DOMAINS}})
    results = {
        "benchmark": "report",
        "messages": args.messages,
        "month": MONTH,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "node": platform.node(),
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1_5_15_at_start": [round(x, 2) for x in os.getloadavg()],
        "backends": {},
    }
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            schema = None
            if backend == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
            else:
                from tests.support.services import drop_postgres_schema, postgres_schema_url

                url, schema = postgres_schema_url()
            engine = make_engine(url)
            try:
                create_schema(engine)
                t0 = time.perf_counter()
                if backend == "sqlite":
                    load_sqlite(Path(tmp) / "ledger.db", args.messages)
                else:
                    load_postgres(engine, args.messages)
                add_feedback_rows(engine, 2000)
                generated = round(time.perf_counter() - t0, 1)
                timing = time_report(engine, settings)
                results["backends"][backend] = {
                    "generate_s": generated,
                    **timing,
                    "load_average_1min_after": round(os.getloadavg()[0], 2),
                }
            finally:
                engine.dispose()
                if schema:
                    drop_postgres_schema(schema)
        print(json.dumps(results["backends"][backend]), file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
