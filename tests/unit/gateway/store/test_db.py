"""gateway.store.db: schema creation when several gateway processes start at once."""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from gateway.store.db import create_schema, make_engine, metadata
from tests.support.schema_race import create_schema_concurrently


def test_create_schema_looks_again_when_another_process_created_a_table(tmp_path, monkeypatch):
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    real = metadata.create_all
    calls = []

    def racing(bind, **kwargs):
        calls.append(bind)
        real(bind, **kwargs)
        if len(calls) == 1:  # the other process created the table between check and CREATE
            raise OperationalError("CREATE TABLE messages", {}, sqlite3.OperationalError("exists"))

    monkeypatch.setattr(metadata, "create_all", racing)
    create_schema(engine)
    assert len(calls) == 2
    assert "messages" in inspect(engine).get_table_names()


def test_concurrent_create_schema_on_one_database_all_succeed(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert create_schema_concurrently(url, timeout=30) == []


def test_a_group_makes_batched_writes_at_once_and_isolates_a_failing_one(tmp_path):
    import asyncio

    from sqlalchemy import Column, Integer, Table, text

    from gateway.store.db import Database, batched

    numbers = Table("test_numbers", metadata, Column("n", Integer, primary_key=True))
    batches: list[int] = []
    release = threading.Event()

    def add_many(conn, calls) -> None:
        batches.append(len(calls))
        conn.execute(numbers.insert(), [{"n": n} for (n,) in calls])

    @batched(add_many)
    def add(conn, n: int) -> None:
        add_many(conn, [(n,)])

    def hold(conn) -> str:
        release.wait(10)
        return "held"

    async def main() -> list:
        db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
        try:
            first = asyncio.ensure_future(db.write(hold))
            await asyncio.sleep(0.1)  # the writer is inside `hold`: the rest forms one group
            rest = [asyncio.ensure_future(db.write(add, n)) for n in (1, 2, 2, 3)]
            await asyncio.sleep(0.1)
            release.set()
            results = await asyncio.gather(first, *rest, return_exceptions=True)
            with db.engine.connect() as conn:
                stored = [r[0] for r in conn.execute(text("SELECT n FROM test_numbers ORDER BY n"))]
            return [results, stored]
        finally:
            db.close()
            metadata.remove(numbers)

    results, stored = asyncio.run(main())
    assert results[0] == "held"
    assert results[1:3] == [None, None] and results[4] is None
    assert isinstance(results[3], Exception)  # the duplicate fails alone
    assert stored == [1, 2, 3]
    assert batches[0] == 4  # first try: all four in one statement
