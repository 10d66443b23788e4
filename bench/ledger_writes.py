"""Cost of a message's books: its ledger rows made, carried in the spool job, written.

Per message, as the intake does it for an accepted mail: `ledger.message_row` and
`recipient_rows` for a verdict of the full chain's shape (twelve filters with their
symbols and facts, two recipients), the rows put in a spool job and the job encoded
(`Job.to_json`), then `ledger.record_many` for groups of 8 messages in one
transaction, as the database writer does under load, on a SQLite file. Prints the
process CPU time per message (the GIL makes it the core's cost): `--code DIR` runs
another checkout's gateway package with this script, to compare. `--group N`: N
messages a commit (at the chain's rates most groups hold one or two); `--delivery`:
also each message's delivery outcome (its attempt rows and the recipients' status, one
transaction per group as the writer makes them). Not a test.
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

GROUP = 8


def _verdict(queue_id: str):
    from gateway.model import (
        Action,
        Decision,
        Envelope,
        FilterResult,
        MessageContext,
        ScoredSymbol,
        Symbol,
    )
    from gateway.pipeline.run import Verdict

    env = Envelope("alice@sender.test", ("bob@example.test", "carol@example.test"), "192.0.2.7")
    raw = (
        b"From: Alice <a@sender.test>\r\nMessage-ID: <x@sender.test>\r\n"
        b"Subject: quarterly figures\r\n\r\n" + b"x" * 5_000
    )
    ctx = MessageContext(queue_id, env, raw, datetime.now(UTC))
    ctx.header("From")  # parsed by the filters already when the rows are made
    names = (
        "message", "auth", "dnsbl", "uribl", "lists", "headers", "mime", "html",
        "classifier", "antivirus", "rules", "bulk",
    )  # fmt: skip
    results = {
        "example.test": {
            name: FilterResult(
                symbols=tuple(Symbol(f"{name.upper()}_{i}", (f"opt{i}",)) for i in range(2)),
                facts={"checked": True, "count": 3, "detail": f"{name} looked at 3 things"},
            )
            for name in names
        }
    }
    symbols = tuple(ScoredSymbol(f"SYM_{i}", 0.5, ("opt",)) for i in range(10))
    decisions = tuple(Decision(r, Action.TAG, 4.2, symbols, ("score 4.20",)) for r in env.rcpt_tos)
    timings = {name: 0.4 for name in names} | {"evaluate": 0.5, "total": 9.5}
    return Verdict(ctx, results, decisions, timings)


def _delivery_rows(queue_id: str, rcpts: list[str]) -> tuple[list[dict], list[tuple]]:
    now = datetime.now(UTC)
    attempts = [
        {"message_id": queue_id, "job_id": f"{queue_id}.0", "kind": "message", "rcpt": r,
         "attempt": 1, "at": now, "result": "delivered", "reply": "250 2.0.0 Ok: queued",
         "remote": "127.0.0.1:2525"}
        for r in rcpts
    ]  # fmt: skip
    return attempts, [(queue_id, rcpts, "delivered", now, None, 1)]


def _record_delivery(conn, ledger, calls: list[tuple[list[dict], list[tuple]]]) -> None:
    many = getattr(ledger, "record_delivery_many", None)
    if many is not None:
        many(conn, calls)
    else:  # the code before: the same statements, from two writes
        ledger.record_attempts_many(conn, [(attempts,) for attempts, _ in calls])
        ledger.mark_many(conn, [mark for _, marks in calls for mark in marks])


def measure(messages: int, group: int = GROUP, delivery: bool = False) -> dict:
    from gateway.store import ledger
    from gateway.store.db import create_schema, make_engine
    from gateway.store.spool import Job, RcptState

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        create_schema(engine)
        verdicts = [_verdict(f"B{n:012d}") for n in range(messages)]
        status = {"bob@example.test": "pending", "carol@example.test": "pending"}
        spool_bytes = 0
        started, cpu = time.perf_counter(), time.process_time()
        with engine.connect() as conn:
            for first in range(0, messages, group):
                calls = []
                for verdict in verdicts[first : first + group]:
                    now = datetime.now(UTC)
                    row = ledger.message_row(verdict, "accepted", "250 2.0.0 Ok", "bench", now)
                    rows = ledger.recipient_rows(verdict, status, {})
                    job = Job(verdict.ctx.queue_id + ".0", verdict.ctx.queue_id, "a@b.test",
                              [RcptState(r) for r in status], 0.0)  # fmt: skip
                    encode = getattr(ledger, "encode_json", None)  # the intake's disk thread
                    if encode is not None:
                        encode(row, rows)
                    job.meta["ledger"] = {
                        "message": ledger.to_jsonable(row),
                        "recipients": [ledger.to_jsonable(r) for r in rows],
                    }
                    spool_bytes += len(job.to_json())
                    calls.append((row, rows))
                with conn.begin():
                    ledger.record_many(conn, calls)
            if delivery:
                rcpts = list(status)
                for first in range(0, messages, group):
                    some = verdicts[first : first + group]
                    done = [_delivery_rows(v.ctx.queue_id, rcpts) for v in some]
                    with conn.begin():
                        _record_delivery(conn, ledger, done)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - started
        with engine.connect() as conn:
            stored = conn.execute(ledger.messages.select().limit(1)).one()._mapping
        engine.dispose()
    return {
        "messages": messages,
        "group": group,
        "delivery": delivery,
        "cpu_us_per_message": round(cpu / messages * 1e6, 1),
        "wall_us_per_message": round(wall / messages * 1e6, 1),
        "spool_json_bytes_per_message": round(spool_bytes / messages),
        "filters_read_back": sorted(stored["filters"])[:3],
        "module": ledger.__file__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--group", type=int, default=GROUP, help="messages a commit")
    parser.add_argument("--delivery", action="store_true", help="and delivery outcomes")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    runs = [measure(args.messages, args.group, args.delivery) for _ in range(args.rounds)]
    print(
        json.dumps(
            {
                "benchmark": "ledger_writes",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "code": str(args.code),
                "load_average_1m": os.getloadavg()[0],
                "runs": runs,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
