"""The database behind the ledger, quarantine, policies and lists (SQLAlchemy Core).

SQLite by default (one node), PostgreSQL for several nodes sharing one store.
Blocking SQLAlchemy calls run in a small thread pool so they never stall the
SMTP event loop. Each module that owns tables defines them on `metadata` and is
listed in TABLE_MODULES, so `create_schema` knows every table; every change to them
also gets a revision in gateway/store/migrations/versions/ (gateway.store.schema).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from gateway.outages import OUTAGES

log = logging.getLogger(__name__)
metadata = MetaData()

# modules that define tables on `metadata`; one line each
TABLE_MODULES: list[str] = [
    "gateway.store.ledger",
    "gateway.lists.records",
    "gateway.store.quarantine",
    "gateway.store.av_policy",
    "gateway.store.attachments",
    "gateway.store.availability",
    "gateway.store.reports",
    "gateway.store.users",
    "gateway.store.sessions",
    "gateway.store.audit",
    "gateway.store.rules_store",
    "gateway.store.accounts",
    "gateway.store.node_status",
    "gateway.store.queue_requests",
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


def track_outages(engine: Engine, target: str) -> None:
    """Every statement on `engine` (reads too: lists, releases, policies) reports to
    gateway.outages as the writer does: a failing database is logged once when it
    starts failing and once when it answers again."""

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        exc = context.original_exception
        if context.is_disconnect or isinstance(exc, OperationalError | InterfaceError):
            OUTAGES.failed("database", target, _first_line(exc))

    @event.listens_for(engine, "after_cursor_execute")
    def _answered(*_args: Any) -> None:
        OUTAGES.ok("database", target)


def create_schema(engine: Engine, attempts: int = 5) -> None:
    """Make sure the database has the code's schema: an empty one is created at the
    migrations' head; one at another revision raises SchemaMismatch, which names the
    command to run (gateway.store.schema)."""
    from gateway.store.schema import ensure_schema

    ensure_schema(engine, attempts)


def batched(many: Callable[..., None]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a write that the writer may make together with its other calls in the same
    group, as `many(conn, [args, ...])`: one statement for many rows instead of one
    each. Only for writes that commute with every other write of a group (new rows,
    or changes to rows committed earlier)."""

    def mark(fn: Callable[..., None]) -> Callable[..., None]:
        fn.many = many  # type: ignore[attr-defined]
        return fn

    return mark


class Database:
    """An engine, a thread pool for reads and one writer thread that commits in groups.

    `await db.run(fn, *args)` calls fn(engine, *args) in the pool.
    `await db.write(fn, *args)` calls fn(conn, *args) inside a transaction shared
    with the other writes waiting at that moment: one commit (one fsync) for many
    messages under load, instead of one each. A failing write is retried alone, so
    it never takes the others down with it. The writer keeps its connection.
    `db.put(fn, args, future, loop)` is the same from another thread (the intake's
    disk threads hand a message's rows on after its spool write).
    """

    MAX_GROUP = 128

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.safe_url = make_url(url).render_as_string(hide_password=True)
        self.engine = make_engine(url)
        track_outages(self.engine, self.safe_url)
        create_schema(self.engine)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db")
        self._writes: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="db-writer", daemon=True)
        self._writer.start()

    async def run(self, fn: Callable[..., T], *args) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, self.engine, *args)

    async def write(self, fn: Callable[..., T], *args) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._writes.put(_Write(fn, args, future, loop, None))
        return await future

    def put(
        self,
        fn: Callable[..., Any],
        args: tuple,
        future: asyncio.Future | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Ticket:
        """`write` from another thread, without a trip through the event loop: the
        writer settles `future` (on `loop`) when the group commits, or drops the
        outcome when there is none. The returned Ticket says, in threads, whether the
        write committed: a later write can depend on it (`Ticket.failed`)."""
        ticket = Ticket()
        self._writes.put(_Write(fn, args, future, loop, ticket))
        return ticket

    def _next_group(self) -> list | None:
        """What is waiting now (at least one write), or None when closing."""
        first = self._writes.get()
        if first is None:
            return None
        group = [first]
        while len(group) < self.MAX_GROUP:
            try:
                item = self._writes.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._writes.put(None)
                break
            group.append(item)
        return group

    def _write_loop(self) -> None:
        conn: Connection | None = None
        while (group := self._next_group()) is not None:
            try:
                conn = conn or self.engine.connect()
                with conn.begin():
                    results = _apply(conn, group)
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting callers
                if isinstance(exc, OperationalError | InterfaceError):  # the database, not the call
                    OUTAGES.failed("database", self.safe_url, _first_line(exc))
                if conn is not None:  # it may be broken: a fresh one next time
                    conn.close()
                    conn = None
                if len(group) == 1:
                    _settle([_mark((group[0], None, exc))])
                    continue
                settled = []
                for item in group:  # find the one that failed; commit the others
                    outcome: tuple[Any, Any, BaseException | None]
                    try:
                        with self.engine.begin() as alone:
                            result = item.fn(alone, *item.args)
                    except Exception as exc:  # noqa: BLE001 - handed to the awaiting caller
                        outcome = (item, None, exc)
                    else:
                        outcome = (item, result, None)
                    settled.append(_mark(outcome))  # before the next item: it may depend on it
                _settle(settled)
                continue
            OUTAGES.ok("database", self.safe_url)
            _settle(
                [_mark((item, result, None)) for item, result in zip(group, results, strict=True)]
            )
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._writes.put(None)
        self._writer.join(30)
        self._pool.shutdown(wait=True)
        self.engine.dispose()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _apply(conn: Connection, group: list) -> list:
    """Every write of a group in order, except that all calls of a `batched` write
    are made at once, where its first call was (their results are None)."""
    results: list = [None] * len(group)
    done: set[Callable] = set()
    for index, (fn, args, *_) in enumerate(group):
        many = getattr(fn, "many", None)
        if many is None:
            results[index] = fn(conn, *args)
        elif fn not in done:
            done.add(fn)
            many(conn, [item.args for item in group if item.fn is fn])
    return results


class _Write(NamedTuple):
    """One write waiting for the writer thread."""

    fn: Callable[..., Any]
    args: tuple
    future: asyncio.Future | None  # settled on `loop` when the group commits
    loop: asyncio.AbstractEventLoop | None
    ticket: Ticket | None  # `Database.put`'s, for later writes that depend on this one


class Ticket:
    """A write handed over with `Database.put`: `failed` is None until the writer has
    committed it (True if it raised instead). Set in the writer thread before any
    later write runs, so a write queued after another can check it."""

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed: bool | None = None


def _mark(outcome: tuple) -> tuple:
    """Set the write's Ticket (if it has one) from its outcome; returns the outcome."""
    item, _, error = outcome
    if item.ticket is not None:
        item.ticket.failed = error is not None
    return outcome


def _settle(outcomes: list[tuple]) -> None:
    """Hand each write's result or error to its caller (their tickets are marked
    already): one callback per event loop for the whole group (one wake-up, not one
    per write). A write nobody awaits (`Database.put` without a future) that failed is
    logged here."""
    by_loop: dict[Any, list[tuple]] = {}
    for outcome in outcomes:
        item, _, error = outcome
        if item.future is not None:
            by_loop.setdefault(item.loop, []).append(outcome)
        elif error is not None:
            log.error("database write %s failed", item.fn.__qualname__, exc_info=error)
    for loop, some in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop closed: nobody is waiting
            loop.call_soon_threadsafe(_resolve, some)


def _resolve(outcomes: list[tuple]) -> None:
    for item, result, error in outcomes:
        future = item.future
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
