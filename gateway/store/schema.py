"""Which schema revision a database is at, and bringing it to the code's (Alembic).

A node opens the store only when the database records the code's head revision: an
empty database gets every table and is stamped at head (what the migrations would
build, which a test checks), an older one (or one with no revision recorded) is
refused with the command that upgrades it, and one upgraded by a newer release is
refused too. Upgrades are run on purpose,
by `mailwarden db upgrade`, never by a node starting up: with several nodes on one
PostgreSQL, the operator decides when the schema changes.

Databases made before migrations existed (mailwarden 0.1's `create_schema`) hold the
baseline revision's tables and no version: they count as the baseline.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from gateway.store.db import TABLE_MODULES, metadata

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema of mailwarden 0.1, before migrations
UPGRADE_COMMAND = "mailwarden db upgrade"


class SchemaMismatch(Exception):
    """The database is not at the revision this code needs; the message says what to run."""


def full_metadata() -> MetaData:
    """The metadata with every table module imported (what the code expects)."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return metadata


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("truncate_slug_length", "60")
    if url is not None:  # ConfigParser interpolates '%': URL-encoded options need doubling
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The code's revision (exactly one head: a test keeps it so)."""
    found = scripts().get_heads()
    if len(found) != 1:
        raise SchemaMismatch(f"the migrations have {len(found)} heads: {', '.join(found)}")
    return found[0]


@dataclass(frozen=True)
class SchemaState:
    revision: str | None  # None: no revision recorded
    has_tables: bool  # any of the code's tables exists

    @property
    def empty(self) -> bool:
        return self.revision is None and not self.has_tables

    @property
    def effective(self) -> str | None:
        """The revision the tables are at (the baseline for a pre-migration database)."""
        if self.revision is None and self.has_tables:
            return BASELINE
        return self.revision


def state(conn: Connection) -> SchemaState:
    heads = MigrationContext.configure(conn).get_current_heads()
    existing = set(inspect(conn).get_table_names())
    has_tables = any(name in existing for name in full_metadata().tables)
    return SchemaState(heads[0] if heads else None, has_tables)


def _known(revision: str) -> bool:
    try:
        return scripts().get_revision(revision) is not None
    except CommandError:
        return False


def describe(found: SchemaState) -> str:
    """One line for `db current` and for refusals."""
    code = head()
    if found.empty:
        return f"empty database (this mailwarden creates it at {code})"
    at = found.effective
    if found.revision is None:
        older = "" if at == code else f", older than the code ({code})"
        return f"made before migrations (counted as {at}){older}: run `{UPGRADE_COMMAND}`"
    if at == code:
        return f"at {at}: current"
    if not _known(found.revision):
        return (
            f"at {at}, which this mailwarden does not know (code at {code}): a newer "
            "release upgraded it; run that release on this node"
        )
    return f"at {at}, older than the code ({code}): run `{UPGRADE_COMMAND}`"


@contextmanager
def _schema_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the schema lock, DDL included, so nodes starting together
    change the schema one at a time and a half-made schema is never seen. PostgreSQL: an
    advisory lock per schema. SQLite: BEGIN IMMEDIATE on a connection where the driver
    does not commit on its own before DDL (SQLAlchemy's recipe for transactional DDL)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            key = "hashtext('mailwarden:' || current_schema())"
            conn.execute(text(f"SELECT pg_advisory_xact_lock({key})"))
            yield conn
        return
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        with engine.begin() as conn:
            yield conn
        return
    ddl = create_engine(
        engine.url, connect_args={"timeout": 30, "isolation_level": None}, poolclass=NullPool
    )

    @event.listens_for(ddl, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with ddl.begin() as conn:
            yield conn
    finally:
        ddl.dispose()


def _stamp(conn: Connection, revision: str) -> None:
    MigrationContext.configure(conn).stamp(scripts(), revision)


def ensure_schema(engine: Engine, attempts: int = 5) -> None:
    """Open only a database at head; create an empty one. Several processes starting at
    once race to create the same table ("already exists"); the loser looks again."""
    for attempt in range(attempts):
        try:
            with _schema_transaction(engine) as conn:
                found = state(conn)
                if found.empty:
                    full_metadata().create_all(conn)
                    _stamp(conn, head())
                    return
                if found.revision != head():
                    url = engine.url.render_as_string(hide_password=True)
                    raise SchemaMismatch(f"database {url} is {describe(found)}")
                return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def upgrade(engine: Engine, target: str = "head") -> tuple[SchemaState, str]:
    """Run the migrations up to `target`: (the state before, the revision after)."""
    with _schema_transaction(engine) as conn:
        found = state(conn)
        if found.revision is None and found.has_tables:
            _stamp(conn, BASELINE)
        if found.effective is not None and not _known(found.effective):
            raise SchemaMismatch(f"database is {describe(found)}")
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, target)
        after = state(conn).revision
    return found, after or ""


def current(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        return state(conn)


def new_revision(message: str) -> Path:
    """Write the next revision file from what the metadata has and the migrations do not
    build yet (Alembic's autogenerate against a scratch SQLite database); review it."""
    from gateway.store.db import make_engine

    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{scratch}/scratch.db")
        try:
            upgrade(engine)
            config = alembic_config()
            with engine.connect() as conn:
                config.attributes["connection"] = conn
                written = command.revision(
                    config, message=message, autogenerate=True, rev_id=f"{int(head()) + 1:04d}"
                )
        finally:
            engine.dispose()
    scripts.cache_clear()
    assert written is not None and not isinstance(written, list)
    path = Path(written.path)
    subprocess.run([sys.executable, "-m", "ruff", "format", str(path)], check=False)
    return path
