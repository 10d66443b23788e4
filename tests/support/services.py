"""The machine's real PostgreSQL and Redis: found, started if stopped, or a clear skip."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid

import pytest

POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def _listening(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
        return True
    except OSError:
        return False


def _start(command: list[str], address: tuple[str, int]) -> bool:
    if not shutil.which(command[0]):
        return False
    subprocess.run(command, capture_output=True, timeout=60, check=False)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _listening(address):
            return True
        time.sleep(0.2)
    return False


def require_postgres() -> str:
    """The base URL of the local PostgreSQL, starting it if needed, else skip."""
    if not _listening(POSTGRES):
        clusters = subprocess.run(
            ["ls", "/etc/postgresql"], capture_output=True, text=True, check=False
        ).stdout.split()
        if not clusters or not _start(
            ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[0], "main", "start"],
            POSTGRES,
        ):
            pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 and could not be started")
    return "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def require_redis() -> str:
    if not _listening(REDIS):
        started = _start(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            REDIS,
        )
        if not started:
            pytest.skip("Redis is not running on 127.0.0.1:6379 and could not be started")
    return "redis://127.0.0.1:6379/0"


def postgres_schema_url() -> tuple[str, str]:
    """A fresh schema in the test database: (URL using it, schema name)."""
    from sqlalchemy import create_engine, text

    base = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{base}?options=-csearch_path%3D{schema}", schema


def drop_postgres_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(require_postgres())
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()
