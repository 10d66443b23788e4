"""A database that stops answering reads is logged once when it starts failing and once
when it answers again, like the writer's failures (gateway/outages.py)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from gateway.lists import records
from gateway.outages import OUTAGES
from gateway.store.db import Database
from tests.support.services import POSTGRES
from tests.support.tcp_proxy import TcpProxy


def test_failing_reads_are_logged_once_and_the_recovery_once(postgres_url, caplog):
    proxy = TcpProxy(POSTGRES)
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    db = Database(url)
    try:
        records.load_entries(db.engine)  # a read the gateway makes (its lists)
        caplog.set_level(logging.WARNING, logger="mailwarden.outage")
        proxy.cut()
        for _ in range(5):
            with pytest.raises(OperationalError):
                records.load_entries(db.engine)
        failing = [r for r in caplog.records if "is failing" in r.getMessage()]
        assert len(failing) == 1, caplog.text
        assert failing[0].levelname == "WARNING"
        assert f"database {db.safe_url} is failing" in failing[0].getMessage()
        assert ("database", db.safe_url) in OUTAGES.failing()

        proxy.restore()
        records.load_entries(db.engine)
        records.load_entries(db.engine)
        again = [r for r in caplog.records if "answers again" in r.getMessage()]
        assert len(again) == 1, caplog.text
        assert "failed call(s)" in again[0].getMessage()
        assert ("database", db.safe_url) not in OUTAGES.failing()
    finally:
        proxy.restore()
        db.close()
        proxy.close()
