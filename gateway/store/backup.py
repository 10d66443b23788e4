"""The configuration, not the mail, to one JSON file and back (`mailwarden backup|restore`).

What an operator would have to type in again after losing the database: policies,
lists, thresholds, rules, users. Which tables that is, is CONFIG_TABLES below: a
module that adds such a table adds one line there, and backup and restore carry it.
The ledger, quarantine and spool are the mail; they are backed up with pg_dump
(docs/deploy.md). A backup names the schema revision it was taken at; restore goes
into an empty database only (every configuration table empty), so it never mixes two
configurations.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Integer, Table, func, insert, select, text, update

from gateway.store.schema import full_metadata, head

FORMAT = "mailwarden-config-backup"
FORMAT_VERSION = 1

# The configuration tables, one line each (parents before the tables that refer to them).
CONFIG_TABLES: list[str] = [
    "av_policies",  # per-mailbox and per-domain antivirus policy
    "list_imports",  # published lists loaded (their source, file, when, by whom)
    "list_entries",  # local block/allow entries, by hand and imported
    "sending_accounts",  # outbound accounts and whether they are suspended
    "users",  # console users, roles, domains, argon2 hashes
    "rule_versions",  # per-domain rules and thresholds, every version
]

# One-row change counters that running nodes poll: bumped after a restore so that a
# node already started on the empty database reloads what was restored.
CHANGE_COUNTERS: dict[str, str] = {
    "list_state": "version",
}


class BackupError(Exception):
    """A backup file that cannot be restored, or a database it cannot go into."""


@dataclass(frozen=True)
class Summary:
    revision: str
    rows: dict[str, int]  # table -> rows written or restored


def _tables() -> list[Table]:
    tables = full_metadata().tables
    missing = [name for name in CONFIG_TABLES if name not in tables]
    if missing:  # a registry line naming a table that no module defines
        raise BackupError(f"CONFIG_TABLES names unknown tables: {', '.join(missing)}")
    return [tables[name] for name in CONFIG_TABLES]


def _encode(value: Any) -> Any:
    """A column value as JSON: times in UTC ISO 8601 (the store keeps UTC; SQLite
    returns it without a zone), bytes in base64, decimals as text."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decoder(table: Table, name: str):
    try:
        kind = table.c[name].type.python_type
    except NotImplementedError:  # JSON and other types without one: as stored
        return lambda v: v
    if kind is dt.datetime:
        return lambda v: None if v is None else dt.datetime.fromisoformat(v)
    if kind is dt.date:
        return lambda v: None if v is None else dt.date.fromisoformat(v)
    if kind is bytes:
        return lambda v: None if v is None else base64.b64decode(v)
    if kind is Decimal:
        return lambda v: None if v is None else Decimal(v)
    return lambda v: v


def dump(engine: Engine) -> dict[str, Any]:
    """Every configuration row, read in one transaction (one snapshot on PostgreSQL)."""
    tables: dict[str, Any] = {}
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            for table in _tables():
                columns = [c.name for c in table.columns]
                order = list(table.primary_key.columns) or list(table.columns)
                rows = conn.execute(select(table).order_by(*order)).all()
                tables[table.name] = {
                    "columns": columns,
                    "rows": [[_encode(v) for v in row] for row in rows],
                }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_revision": head(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "tables": tables,
    }


def write(engine: Engine, out: Path) -> Summary:
    """Write the backup to `out` (via a temporary file beside it: never half a file),
    readable by its owner only: it holds the console users' password hashes."""
    data = dump(engine)
    part = out.with_name(out.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    part.replace(out)
    rows = {name: len(t["rows"]) for name, t in data["tables"].items()}
    return Summary(data["schema_revision"], rows)


def read(path: Path) -> dict[str, Any]:
    """Parse and check a backup file; every problem names the file (and line)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{path}: file not found") from None
    except OSError as exc:
        raise BackupError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BackupError(f"{path}: not a mailwarden backup (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise BackupError(f"{path}:{exc.lineno}: not a mailwarden backup: {exc.msg}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError(f'{path}: not a mailwarden backup (no "format": "{FORMAT}")')
    if data.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{path}: backup format {data.get('format_version')!r}, this mailwarden reads "
            f"{FORMAT_VERSION}"
        )
    if not isinstance(data.get("tables"), dict):
        raise BackupError(f'{path}: no "tables" object')
    known = {t.name: t for t in _tables()}
    for name, content in data["tables"].items():
        table = known.get(name)
        if table is None:
            raise BackupError(
                f"{path}: table {name!r} is not a configuration table of this mailwarden "
                f"(schema {head()}; the backup is from {data.get('schema_revision')})"
            )
        columns = content.get("columns") if isinstance(content, dict) else None
        rows = content.get("rows") if isinstance(content, dict) else None
        if not isinstance(columns, list) or not isinstance(rows, list):
            raise BackupError(f'{path}: table {name}: needs "columns" and "rows" lists')
        unknown = [c for c in columns if c not in table.c]
        if unknown:
            raise BackupError(f"{path}: table {name}: unknown columns {', '.join(unknown)}")
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, list) or len(row) != len(columns):
                raise BackupError(
                    f"{path}: table {name}, row {number}: {len(columns)} values expected"
                )
    return data


def _occupied(conn: Connection, tables: Iterable[Table]) -> list[str]:
    found = []
    for table in tables:
        count = conn.execute(select(func.count()).select_from(table)).scalar_one()
        if count:
            found.append(f"{table.name} ({count} rows)")
    return found


def _reset_sequences(conn: Connection, table: Table) -> None:
    """PostgreSQL: restored ids were given explicitly; the next id follows the largest."""
    for column in table.primary_key.columns:
        if not isinstance(column.type, Integer):
            continue
        sequence = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
        ).scalar()
        if sequence:
            conn.execute(
                text(f"SELECT setval(:s, COALESCE((SELECT MAX({column.name}) FROM "
                     f"{table.name}), 0) + 1, false)"),
                {"s": sequence},
            )  # fmt: skip


def _bump_counters(conn: Connection) -> None:
    tables = full_metadata().tables
    for name, column in CHANGE_COUNTERS.items():
        table = tables[name]
        done = conn.execute(
            update(table).where(table.c.id == 1).values({column: table.c[column] + 1})
        )
        if done.rowcount == 0:
            conn.execute(insert(table).values({"id": 1, column: 1}))


def restore(engine: Engine, data: dict[str, Any], source: str) -> Summary:
    """Insert a read backup into `engine`'s database, all in one transaction; refused
    (BackupError) when any configuration table already holds a row."""
    tables = _tables()
    url = engine.url.render_as_string(hide_password=True)
    rows: dict[str, int] = {}
    with engine.begin() as conn:
        occupied = _occupied(conn, tables)
        if occupied:
            raise BackupError(
                f"{url} is not empty: {', '.join(occupied)}; restore goes into an empty "
                f"database only (a new one: `mailwarden db upgrade --url URL`, then restore "
                f"{source})"
            )
        for table in tables:
            content = data["tables"].get(table.name)
            if content is None:
                rows[table.name] = 0
                continue
            columns = content["columns"]
            decoders = [_decoder(table, c) for c in columns]
            values = [
                {c: decode(v) for c, decode, v in zip(columns, decoders, row, strict=True)}
                for row in content["rows"]
            ]
            if values:
                conn.execute(insert(table), values)
            if engine.dialect.name == "postgresql":
                _reset_sequences(conn, table)
            rows[table.name] = len(values)
        _bump_counters(conn)
    return Summary(str(data.get("schema_revision", "")), rows)
