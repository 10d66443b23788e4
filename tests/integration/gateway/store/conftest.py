"""A fresh schema on SQLite and on PostgreSQL: the store must answer the same on both."""

from __future__ import annotations

import pytest

from gateway.store.db import create_schema, make_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()
