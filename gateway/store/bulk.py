"""The writer's hot statements on SQLite, with less of SQLAlchemy's per-statement work.

The database writer makes the same few statements for every message (the ledger's
inserts, a delivery's attempt rows and outcome updates), a few rows each. On SQLite,
SQLAlchemy's execution path (statement cache, execution context, result set-up,
events) costs as much CPU as SQLite itself for a handful of rows. Here each statement
is compiled once per set of columns and its rows go to the driver's executemany with
the bind processing SQLAlchemy applies (its SQLite datetime text, booleans, floats),
so the stored values are the same; a driver error comes back as SQLAlchemy's exception
class (OperationalError, IntegrityError...), as from `conn.execute`.

A statement that needs more (a column default to fill in, a named or expanding
parameter) and every other database go through `conn.execute` as before; PostgreSQL
gets SQLAlchemy's insertmanyvalues batching there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

# (statement, its rows' keys) -> (SQL, parameters in order with their processors),
# or None when the statement must go through SQLAlchemy
_Plan = tuple[str, tuple[tuple[str, Callable[[Any], Any] | None], ...]] | None
_plans: dict[tuple[int, tuple[str, ...]], tuple[Executable, _Plan]] = {}


def executemany(conn: Connection, stmt: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
    """`conn.execute(stmt, rows)`, inside the caller's transaction. `stmt` is built once
    (a module constant), and every row has the same keys."""
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name != "sqlite":
        conn.execute(stmt, list(rows))
        return
    keys = tuple(rows[0])
    cached = _plans.get((id(stmt), keys))
    if cached is None or cached[0] is not stmt:
        cached = (stmt, _plan(conn, stmt, keys))
        _plans[(id(stmt), keys)] = cached
    plan = cached[1]
    if plan is None:
        conn.execute(stmt, list(rows))
        return
    sql, order = plan
    params = [
        tuple(value if process is None else process(value) for key, process in order
              for value in (row[key],))
        for row in rows
    ]  # fmt: skip
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.executemany(sql, params)
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()


def _plan(conn: Connection, stmt: Executable, keys: tuple[str, ...]) -> _Plan:
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    names = compiled.positiontup
    known = set(keys)
    if (
        names is None
        or any(name not in known for name in names)  # a default SQLAlchemy would fill in
        or compiled.literal_execute_params
        or compiled.post_compile_params
    ):
        return None
    processors = compiled._bind_processors
    return str(compiled), tuple((name, processors.get(name)) for name in names)
