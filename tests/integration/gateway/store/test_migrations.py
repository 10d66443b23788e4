"""Schema migrations (gateway.store.schema, `mailwarden db`) on SQLite and PostgreSQL.

These catch a table added without a revision (the migrations must build exactly the
metadata's schema), two helpers' revisions on one parent (one head only), and an
upgrade that loses rows of a database made by the previous release.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, insert, select, text

from gateway.store import schema
from gateway.store.db import Database, create_schema, make_engine
from tests.support.gateway import REPO, write_config
from tests.support.schema_race import create_schema_concurrently


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(store_url):
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


def mailwarden(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def schema_differences(engine: Engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, schema.full_metadata())


def previous_release_database(engine: Engine) -> None:
    """What mailwarden 0.1's create_schema left: the baseline tables, no version table."""
    schema.upgrade(engine, schema.BASELINE)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))


def test_the_migrations_have_exactly_one_head_and_no_branch_point():
    scripts = schema.scripts()
    assert scripts.get_heads() == [schema.head()]
    assert scripts.get_bases() == [schema.BASELINE]
    for script in scripts.walk_revisions():
        assert not script.is_branch_point, f"two revisions follow {script.revision}"


def test_the_migrations_build_exactly_the_schema_of_the_table_metadata(engine):
    schema.upgrade(engine)
    assert schema_differences(engine) == [], (
        "the tables' metadata differs from what the migrations build: "
        "add a revision (`mailwarden db revision -m ...`)"
    )
    assert schema.current(engine).revision == schema.head()


def test_an_empty_database_opened_by_a_node_is_created_at_head(engine, store_url):
    db = Database(store_url)
    db.close()
    assert schema.current(engine).revision == schema.head()
    assert schema_differences(engine) == []


def _value(column, chosen: dict[tuple[str, str], object], serial: int) -> object:
    """A value of the column's type; a foreign key gets the value its target got."""
    for fk in column.foreign_keys:
        return chosen[(fk.column.table.name, fk.column.name)]
    kind = column.type.python_type
    if kind is bool:
        return True
    if kind is int:
        return serial
    if kind is float:
        return serial + 0.5
    if kind is datetime:
        return datetime(2026, 11, serial % 28 + 1, 12, 30, tzinfo=UTC)
    if kind is bytes:
        return bytes([serial % 256, 0, 255])
    if kind in (dict, list):
        return {"kept": [serial, "value"]}
    length = getattr(column.type, "length", None) or 40
    return f"{column.name}-{serial}"[:length]


def fill_every_table(engine: Engine) -> dict[str, list[dict]]:
    """One row in every table there is (whatever the revision), and what each holds."""
    tables = MetaData()
    tables.reflect(engine)
    chosen: dict[tuple[str, str], object] = {}
    with engine.begin() as conn:
        for serial, table in enumerate(tables.sorted_tables, start=1):
            if table.name == "alembic_version":  # the revision, not data
                continue
            row = {}
            for column in table.columns:
                row[column.name] = chosen[(table.name, column.name)] = _value(
                    column, chosen, serial
                )
            conn.execute(insert(table).values(row))
    return read_every_table(engine)


def read_every_table(engine: Engine) -> dict[str, list[dict]]:
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        return {
            name: [dict(row._mapping) for row in conn.execute(select(table))]
            for name, table in tables.tables.items()
            if name != "alembic_version"
        }


@pytest.mark.slow
def test_mailwarden_db_upgrade_keeps_every_row_of_a_previous_release_database(engine, store_url):
    previous_release_database(engine)
    before = fill_every_table(engine)
    assert before and all(len(rows) == 1 for rows in before.values())

    done = mailwarden("db", "upgrade", "--url", store_url)
    assert done.returncode == 0, done.stderr
    assert f"made before migrations, counted as {schema.BASELINE}" in done.stdout
    assert done.stdout.strip().endswith(f"now at {schema.head()}")

    assert schema.current(engine).revision == schema.head()
    after = read_every_table(engine)
    for name, rows in before.items():
        assert len(after[name]) == 1, f"{name}: rows lost by the upgrade"
        kept = {key: after[name][0][key] for key in rows[0] if key in after[name][0]}
        assert kept == rows[0], f"{name}: values changed by the upgrade"
    assert schema_differences(engine) == []
    again = mailwarden("db", "upgrade", "--url", store_url)
    assert "already at" in again.stdout


@pytest.mark.slow
def test_the_last_release_database_full_in_every_table_upgrades_in_place(engine, store_url):
    """A database of the release before this code (the revision below head), with a
    row in every table it has, those of its newest revisions included."""
    last = schema.scripts().get_revision(schema.head()).down_revision
    assert isinstance(last, str)
    schema.upgrade(engine, last)
    before = fill_every_table(engine)
    assert {"sending_accounts", "login_attempts", "messages"} <= set(before)
    done = mailwarden("db", "upgrade", "--url", store_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"upgraded from {last} to {schema.head()}")
    assert schema.current(engine).revision == schema.head()
    after = read_every_table(engine)
    for name, rows in before.items():
        assert len(after[name]) == 1, f"{name}: rows lost by the upgrade"
        kept = {key: after[name][0][key] for key in rows[0]}
        assert kept == rows[0], f"{name}: values changed by the upgrade"
    assert schema_differences(engine) == []


def test_serve_refuses_a_database_older_than_its_code_and_names_the_command(
    engine, store_url, tmp_path
):
    previous_release_database(engine)
    config = write_config(tmp_path, "127.0.0.1:9", {"store": {"url": store_url}})

    for command in (["serve"], ["lists", "show"]):
        refused = mailwarden(*command, "--config", str(config), timeout=60)
        assert refused.returncode == 2, (command, refused.stderr)
        assert "made before migrations" in refused.stderr
        assert "run `mailwarden db upgrade`" in refused.stderr
    assert schema.current(engine).revision is None  # nothing was changed behind our back

    current = mailwarden("db", "current", "--config", str(config))
    assert current.returncode == 1
    assert "made before migrations" in current.stdout

    assert mailwarden("db", "upgrade", "--config", str(config)).returncode == 0
    assert mailwarden("db", "current", "--config", str(config)).returncode == 0
    shown = mailwarden("db", "current", "--config", str(config), "--json")
    assert json.loads(shown.stdout)["at_head"] is True and shown.returncode == 0
    listed = json.loads(mailwarden("db", "history", "--config", str(config), "--json").stdout)
    assert listed[0]["down_revision"] is None and listed[-1]["head"] and listed[-1]["current"]


def test_a_database_upgraded_by_a_newer_release_is_refused_too(engine):
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(schema.SchemaMismatch, match="newer release"):
        create_schema(engine)
    with pytest.raises(schema.SchemaMismatch, match="newer release"):
        schema.upgrade(engine)


def test_nodes_starting_together_on_one_empty_postgres_schema_all_open_it(postgres_url):
    assert create_schema_concurrently(postgres_url, timeout=60) == []
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [v for (v,) in versions] == [schema.head()]
    finally:
        engine.dispose()


def test_the_migration_files_are_package_data():
    """An installed mailwarden (not a checkout) must find its migrations."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    data = project["tool"]["setuptools"]["package-data"]
    assert "script.py.mako" in data["gateway.store.migrations"]
    versions = Path(schema.MIGRATIONS, "versions")
    assert (versions / "__init__.py").exists() and (schema.MIGRATIONS / "__init__.py").exists()


def test_a_database_made_just_before_migrations_with_delivery_attempts_upgrades(engine):
    """delivery_attempts landed shortly before migrations: such a database has it already."""
    previous_release_database(engine)
    schema.full_metadata().tables["delivery_attempts"].create(engine)
    schema.upgrade(engine)
    assert schema.current(engine).revision == schema.head()
    assert schema_differences(engine) == []
