"""Alembic's entry point: migrate the connection or URL that gateway.store.schema hands over.

Run by Alembic itself, never imported. SQLite gets batch mode so later revisions can
alter columns there too (SQLite has no ALTER COLUMN).
"""

from __future__ import annotations

from alembic import context

from gateway.store.db import make_engine
from gateway.store.schema import full_metadata

config = context.config
target_metadata = full_metadata()


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,
        **kwargs,
    )


def run_offline() -> None:
    """`mailwarden db upgrade --sql`: print the SQL for a database administrator."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: no sqlalchemy.url and no connection given")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
