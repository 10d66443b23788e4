"""The database behind the ledger, quarantine, policies and lists (SQLAlchemy Core).

SQLite by default (one node), PostgreSQL for several nodes sharing one store.
Blocking SQLAlchemy calls run in a small thread pool so they never stall the
SMTP event loop. Each module that owns tables defines them on `metadata` and is
listed in TABLE_MODULES, so `create_schema` knows every table.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url

metadata = MetaData()

# modules that define tables on `metadata`; one line each
TABLE_MODULES: list[str] = [
    "gateway.ledger",
    "gateway.lists",
    "gateway.quarantine",
]

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite, WAL mode and the parent folder created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


def create_schema(engine: Engine) -> None:
    for module in TABLE_MODULES:
        importlib.import_module(module)
    metadata.create_all(engine)


class Database:
    """An engine plus a thread pool: `await db.run(fn, *args)` calls fn(engine, *args)."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.engine = make_engine(url)
        create_schema(self.engine)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db")

    async def run(self, fn: Callable[..., T], *args) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, self.engine, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.dispose()
