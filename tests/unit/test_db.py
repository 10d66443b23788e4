"""gateway.db: schema creation when several gateway processes start at once."""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from gateway.db import create_schema, make_engine, metadata


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
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def create() -> None:
        engine = make_engine(url)
        start.wait()
        try:
            create_schema(engine)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
