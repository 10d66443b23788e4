"""The clamd client against a real clamd: unix socket and TCP, big streams, limits, failures."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from gateway.adapters.clamd import ClamdClient, ScanError
from tests.support.clamd import ClamdServer, project_signatures_as_cud
from tests.support.virusmail import EICAR, TESTFILES

MB = 1024 * 1024
EICAR_NAME = "Mailwarden.Test.EICAR.UNOFFICIAL"
CLAM_NAME = "Mailwarden.Test.ClamAV-TestFile.UNOFFICIAL"


def client_for(server: ClamdServer, transport: str, **kwargs) -> ClamdClient:
    kwargs.setdefault("stream_max_length", 64 * MB)
    if transport == "unix":
        return ClamdClient(socket_path=server.socket, **kwargs)
    return ClamdClient(address=server.address, **kwargs)


def message_with(size: int, last: bytes) -> bytes:
    """A message of about `size` bytes: random attachment, then `last` as the final one."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.test", "big"
    msg.set_content("see attachments")
    msg.add_attachment(
        os.urandom(int(size * 0.75)), "application", "octet-stream", filename="big.bin"
    )
    msg.add_attachment(last, "application", "octet-stream", filename="last.com")
    return msg.as_bytes()


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_eicar_and_clean_data(clamd, transport):
    client = client_for(clamd, transport)
    try:
        infected = client.scan_sync(EICAR)
        assert (infected.status, infected.virus) == ("infected", EICAR_NAME)
        assert client.scan_sync(b"just text").status == "clean"
        assert client.scan_sync(b"").status == "clean"
    finally:
        client.close()


def test_every_clamav_testfile_is_detected_by_the_project_signatures(clamd):
    files = sorted(TESTFILES.iterdir())
    assert len(files) >= 44, "Debian's clamav-testfiles is not installed"
    client = client_for(clamd, "unix")
    try:
        missed = [f.name for f in files if client.scan_sync(f.read_bytes()).virus != CLAM_NAME]
    finally:
        client.close()
    assert missed == []


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("size", [1 * MB, 25 * MB], ids=["1MB", "25MB"])
def test_big_messages_are_sent_whole(clamd, transport, size):
    """EICAR is the last attachment: found only if every byte before it reached clamd."""
    client = client_for(clamd, transport, timeout=60.0)
    try:
        infected = message_with(size, EICAR)
        assert len(infected) >= size
        result = client.scan_sync(infected)
        assert (result.status, result.virus, result.size) == ("infected", EICAR_NAME, len(infected))
        if transport == "unix":  # (one clean 25 MB stream is enough)
            assert client.scan_sync(message_with(size, b"harmless")).status == "clean"
    finally:
        client.close()


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_stream_over_clamds_limit_is_too_large_never_clean(clamd_small, transport):
    # our limit set high on purpose: clamd (StreamMaxLength 1M) is the one that says no
    client = client_for(clamd_small, transport)
    try:
        assert client.scan_sync(os.urandom(MB // 2)).status == "clean"
        for size in (2 * MB, 25 * MB):
            assert client.scan_sync(os.urandom(size)).status == "too_large"
        # and the connection pool still works after clamd hung up on us
        assert client.scan_sync(EICAR).status == "infected"
    finally:
        client.close()


def test_known_limit_is_checked_before_sending(clamd):
    client = client_for(clamd, "unix", stream_max_length=MB)
    try:
        result = client.scan_sync(os.urandom(MB + 1))
        assert (result.status, result.size) == ("too_large", MB + 1)
    finally:
        client.close()


def test_concurrent_scans_from_the_event_loop(clamd):
    client = client_for(clamd, "unix", workers=4)

    async def many():
        datas = [EICAR if i % 3 == 0 else os.urandom(50_000) for i in range(24)]
        results = await asyncio.gather(*(client.scan(d) for d in datas))
        return [r.status for r in results]

    try:
        statuses = asyncio.run(many())
    finally:
        client.close()
    assert statuses == ["infected" if i % 3 == 0 else "clean" for i in range(24)]


def test_frozen_clamd_times_out_on_time(clamd_private):
    client = client_for(clamd_private, "unix", timeout=1.5)
    try:
        assert client.scan_sync(EICAR).status == "infected"
        clamd_private.pause()
        started = time.monotonic()
        with pytest.raises(ScanError, match="timed out"):
            client.scan_sync(os.urandom(4 * MB))
        assert time.monotonic() - started < 5  # one deadline, not pyclamd's five retries
    finally:
        clamd_private.resume()
        client.close()


def test_stopped_clamd_is_an_error_not_a_clean_result_and_recovery_is_automatic(clamd_private):
    client = client_for(clamd_private, "tcp", timeout=3.0)
    try:
        assert client.scan_sync(EICAR).status == "infected"
        clamd_private.stop()
        with pytest.raises(ScanError):
            client.scan_sync(EICAR)
        with pytest.raises(ScanError):
            client.version_sync()
        assert client.ping_sync() is False
        clamd_private.start()  # back: the same client works again, nothing to reset
        assert client.scan_sync(EICAR).status == "infected"
    finally:
        client.close()


def test_version_without_and_with_a_dated_database(clamd):
    client = client_for(clamd, "unix")
    try:
        local = client.version_sync()
        assert local.engine and local.db_version is None and local.db_date is None
    finally:
        client.close()
    built = datetime.now(UTC) - timedelta(days=2)
    cud = project_signatures_as_cud(27123, built)
    with ClamdServer(extra_databases={"daily.cud": cud}) as dated:
        client = client_for(dated, "tcp")
        try:
            version = client.version_sync()
            assert version.db_version == 27123
            assert abs(version.db_date - built) < timedelta(seconds=1)
            assert version.age_days(datetime.now(UTC)) == pytest.approx(2.0, abs=0.01)
            assert client.scan_sync(EICAR).status == "infected"
        finally:
            client.close()


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_clamd_restarted_between_two_scans_is_scanned_on_a_fresh_session(
    clamd_private, transport, how
):
    """A pooled session that clamd closed (restart) is retried, never reported clean."""
    client = client_for(clamd_private, transport, timeout=5.0)
    try:
        assert client.scan_sync(EICAR).status == "infected"  # opens this thread's session
        getattr(clamd_private, how)()
        clamd_private.start()
        results = client.scan_batch_sync([b"harmless", EICAR])
        assert [(r.status, r.virus) for r in results] == [  # type: ignore[union-attr]
            ("clean", None),
            ("infected", EICAR_NAME),
        ]
        clamd_private.stop()  # killed between two messages: an error for each stream
        results = client.scan_batch_sync([b"harmless", EICAR])
        assert all(isinstance(r, ScanError) for r in results)
        clamd_private.start()
        assert client.scan_sync(EICAR).status == "infected"
    finally:
        client.close()


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_streams_after_one_over_clamds_limit_go_on_a_fresh_session(clamd_small, transport):
    """clamd hangs up after a size-limit error: the streams after it still get verdicts."""
    client = client_for(clamd_small, transport)
    try:
        datas = [EICAR, os.urandom(2 * MB), b"harmless", EICAR, os.urandom(MB // 2)]
        results = client.scan_batch_sync(datas)
        assert [getattr(r, "status", r) for r in results] == [
            "infected",
            "too_large",
            "clean",
            "infected",
            "clean",
        ]
        assert client.scan_sync(EICAR).status == "infected"
    finally:
        client.close()


def test_many_streams_of_one_message_are_all_answered_in_time(clamd):
    """60 parts on one session: every verdict, well within the deadline (clamd leaves
    commands that reach it in one burst unanswered until its ReadTimeout)."""
    client = client_for(clamd, "unix", timeout=10.0)
    try:
        datas = [EICAR if i % 5 == 0 else b"part %d " % i * 50 for i in range(60)]
        started = time.monotonic()
        results = client.scan_batch_sync(datas)
        assert time.monotonic() - started < 5
        assert [getattr(r, "status", r) for r in results] == [
            "infected" if i % 5 == 0 else "clean" for i in range(60)
        ]
    finally:
        client.close()
