"""The clamd client: pyclamd INSTREAM over a unix socket or TCP, in a thread pool.

pyclamd 0.4.0 has four flaws that matter for mail (see docs/antivirus.md):
it ignores partial sends (`socket.send`), so a 1 MB stream breaks with a
timeout set; its receive loop retries a timed-out `recv` five times, so a
"30 s" timeout lasts 150 s; it answers None ("clean") when clamd closes the
connection without any reply; and each object keeps one socket, so it is not
thread-safe. `_Fixed` corrects them without copying pyclamd: it wraps pyclamd's
socket in `_DeadlineSocket` (sendall, one deadline for the whole command, a
timeout that pyclamd cannot swallow, a record of what clamd said), and every
worker thread gets its own client object. Scans run in that thread pool, so
the SMTP event loop never blocks on clamd.

A stream larger than clamd's StreamMaxLength is never reported clean: it is a
`ScanResult` with status "too_large", whether we knew the limit beforehand
(`stream_max_length`) or clamd told us ("INSTREAM size limit exceeded").
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyclamd

from gateway.config import ClamavSettings, parse_host_port
from gateway.outages import OUTAGES

CHUNK = 256 * 1024  # INSTREAM chunk: few syscalls, far below any StreamMaxLength
SIZE_LIMIT_REPLY = b"size limit exceeded"


class ScanError(Exception):
    """clamd could not be reached, timed out, or answered with an error."""


class _Timeout(Exception):
    """Deadline passed. Deliberately not an OSError: pyclamd retries those."""


@dataclass(frozen=True)
class ScanResult:
    status: Literal["clean", "infected", "too_large"]
    virus: str | None = None
    size: int = 0


@dataclass(frozen=True)
class ClamdVersion:
    """clamd's VERSION reply: engine, and database version and date when known.

    Local .ndb/.hdb databases carry neither version nor date; clamd reports them
    only for a daily database (.cvd/.cld/.cud), so both may be None.
    """

    engine: str
    db_version: int | None
    db_date: datetime | None  # aware, in this machine's timezone (clamd prints local time)
    raw: str

    def age_days(self, now: datetime) -> float | None:
        if self.db_date is None:
            return None
        return (now - self.db_date).total_seconds() / 86400


_VERSION = re.compile(r"^ClamAV\s+(?P<engine>[^/\s]+)(?:/(?P<db>\d+)(?:/(?P<date>.+))?)?$")


def parse_version(text: str) -> ClamdVersion:
    """'ClamAV 1.4.6/27002/Sun Nov  1 01:22:31 2026' -> ClamdVersion; ValueError if not."""
    raw = text.strip().rstrip("\0").strip()
    match = _VERSION.match(raw)
    if not match:
        raise ValueError(f"not a clamd VERSION reply: {raw!r}")
    db_date = None
    if match.group("date"):
        try:
            naive = datetime.strptime(match.group("date").strip(), "%a %b %d %H:%M:%S %Y")
        except ValueError as exc:
            raise ValueError(f"unreadable database date in {raw!r}") from exc
        db_date = naive.astimezone()  # clamd prints ctime() in its local time
    db = match.group("db")
    return ClamdVersion(
        engine=match.group("engine"),
        db_version=int(db) if db else None,
        db_date=db_date,
        raw=raw,
    )


class _DeadlineSocket:
    """pyclamd's socket, with sendall, one deadline per command, and a transcript."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self.received = bytearray()

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout("clamd did not answer in time")
        self._sock.settimeout(remaining)

    def send(self, data: Any) -> int:
        self._arm()
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise _Timeout("clamd stopped reading") from None
        return len(data)

    def recv(self, size: int) -> bytes:
        self._arm()
        try:
            data = self._sock.recv(size)
        except TimeoutError:
            raise _Timeout("clamd did not answer in time") from None
        self.received += data
        return data

    def drain(self) -> bytes:
        """Whatever clamd still has to say (after it stopped reading our stream)."""
        try:
            while len(self.recv(4096)):
                pass
        except (OSError, _Timeout):
            pass
        return bytes(self.received)

    def close(self) -> None:
        self._sock.close()


class _Reader:
    """A file-like view of bytes: pyclamd's bytes path sends a stray 0-length chunk."""

    def __init__(self, data: bytes | memoryview) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int) -> memoryview:
        chunk = self._view[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk


class _Fixed:
    """Mixin over a pyclamd client class; see the module docstring for what it fixes."""

    clamd_socket: Any  # set by pyclamd's _init_socket
    timeout: float

    def __init__(self, *args: Any, timeout: float, **kwargs: Any) -> None:
        self._command_timeout = timeout
        self._deadline: float | None = None
        super().__init__(*args, timeout=timeout, **kwargs)  # type: ignore[call-arg]

    def _init_socket(self) -> None:
        deadline = self._deadline or time.monotonic() + self._command_timeout
        self.timeout = max(0.001, deadline - time.monotonic())  # pyclamd's connect timeout
        super()._init_socket()  # type: ignore[misc]
        self.clamd_socket = _DeadlineSocket(self.clamd_socket, deadline)

    def _begin(self) -> None:
        self._deadline = time.monotonic() + self._command_timeout

    def _end(self) -> None:
        self._deadline = None
        sock = getattr(self, "clamd_socket", None)
        if sock is not None:
            sock.close()  # pyclamd leaves it open when a command fails

    def command(self, fn: Any, *args: Any) -> Any:
        self._begin()
        try:
            return fn(*args)
        finally:
            self._end()

    def scan_bytes(self, data: bytes | memoryview) -> ScanResult:
        self._begin()
        try:
            found = super().scan_stream(_Reader(data), CHUNK)  # type: ignore[misc]
        except pyclamd.BufferTooLongError:
            return ScanResult("too_large", size=len(data))
        except (BrokenPipeError, ConnectionResetError) as exc:
            # clamd stops reading when the stream passes StreamMaxLength, then says why
            if SIZE_LIMIT_REPLY in self.clamd_socket.drain():
                return ScanResult("too_large", size=len(data))
            raise ScanError(f"clamd closed the connection: {exc}") from None
        finally:
            self._end()
        received = bytes(self.clamd_socket.received)
        if found is None:
            if b"OK" not in received:
                raise ScanError(f"clamd gave no verdict (said {received[:200]!r})")
            return ScanResult("clean", size=len(data))
        status, reason = next(iter(found.values()))
        if status == "FOUND":
            return ScanResult("infected", virus=reason, size=len(data))
        raise ScanError(f"clamd: {reason} {status}".strip())


class _UnixClient(_Fixed, pyclamd.ClamdUnixSocket):
    pass


class _TcpClient(_Fixed, pyclamd.ClamdNetworkSocket):
    pass


class ClamdClient:
    """Async facade: `await client.scan(data)`, `await client.version()`.

    Each worker thread lazily opens its own pyclamd client (pyclamd objects are
    not thread-safe); `workers` bounds the scans in flight from this process.
    """

    def __init__(
        self,
        *,
        socket_path: str | Path | None = None,
        address: str | None = None,
        timeout: float = 30.0,
        workers: int = 4,
        stream_max_length: int = 25 * 1024 * 1024,
    ) -> None:
        if (socket_path is None) == (address is None):
            raise ValueError("give exactly one of socket_path or address")
        self.socket_path = str(socket_path) if socket_path is not None else None
        self.address = parse_host_port(address) if address is not None else None
        self.timeout = timeout
        self.stream_max_length = stream_max_length
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clamd")
        self._local = threading.local()
        self._version: tuple[float, ClamdVersion] | None = None

    @classmethod
    def from_settings(cls, settings: ClamavSettings) -> ClamdClient:
        return cls(
            socket_path=settings.socket,
            address=settings.address,
            timeout=settings.timeout,
            workers=settings.workers,
            stream_max_length=settings.stream_max_length,
        )

    @property
    def target(self) -> str:
        if self.socket_path:
            return self.socket_path
        assert self.address is not None
        return f"{self.address[0]}:{self.address[1]}"

    def _client(self) -> _Fixed:
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                if self.socket_path:
                    client = _UnixClient(self.socket_path, timeout=self.timeout)
                else:
                    assert self.address is not None
                    host, port = self.address
                    client = _TcpClient(host, port, timeout=self.timeout)
            except (OSError, _Timeout) as exc:
                raise ScanError(f"cannot reach clamd at {self.target}: {exc}") from None
            self._local.client = client
        return client

    # blocking calls, run in the pool

    def scan_sync(self, data: bytes | memoryview) -> ScanResult:
        if len(data) > self.stream_max_length:
            return ScanResult("too_large", size=len(data))
        try:
            client = self._client()
            result = client.scan_bytes(data)
        except _Timeout:
            error = ScanError(f"clamd at {self.target} timed out after {self.timeout} s")
            OUTAGES.failed("clamd", self.target, error)
            raise error from None
        except OSError as exc:  # pyclamd.ConnectionError is an OSError too
            error = ScanError(f"clamd at {self.target}: {exc}")
            OUTAGES.failed("clamd", self.target, error)
            raise error from None
        except ScanError as exc:
            if str(exc).startswith(("cannot reach", "clamd closed")):  # down, not one mail
                OUTAGES.failed("clamd", self.target, exc)
            raise
        OUTAGES.ok("clamd", self.target)
        return result

    def version_sync(self) -> ClamdVersion:
        client = self._client()
        try:
            reply = client.command(client.version)  # type: ignore[attr-defined]
        except _Timeout:
            raise ScanError(f"clamd at {self.target} timed out after {self.timeout} s") from None
        except OSError as exc:
            raise ScanError(f"clamd at {self.target}: {exc}") from None
        try:
            return parse_version(reply if isinstance(reply, str) else reply.decode())
        except ValueError as exc:
            raise ScanError(str(exc)) from None

    def ping_sync(self) -> bool:
        try:
            client = self._client()
            return bool(client.command(client.ping))  # type: ignore[attr-defined]
        except (ScanError, OSError, _Timeout):
            return False

    # async facade

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    async def scan(self, data: bytes | memoryview) -> ScanResult:
        """Scan one stream. Raises ScanError; never reports an unscanned stream clean."""
        return await self._run(self.scan_sync, data)

    def _scan_each(self, datas: list[bytes]) -> list[ScanResult | ScanError]:
        out: list[ScanResult | ScanError] = []
        for data in datas:
            try:
                out.append(self.scan_sync(data))
            except ScanError as exc:
                out.append(exc)
        return out

    async def scan_many(
        self, datas: list[bytes], together_below: int = 256 * 1024
    ) -> list[ScanResult | ScanError]:
        """Scan several streams of one message, a ScanError in place of a failed one.

        Up to `together_below` bytes in all, one after the other in one worker hop
        (a hop costs the event loop more than a small scan costs clamd); larger
        messages' parts in parallel, each in its own hop.
        """
        if len(datas) > 1 and sum(len(d) for d in datas) < together_below:
            return await self._run(self._scan_each, datas)
        found = await asyncio.gather(*(self.scan(d) for d in datas), return_exceptions=True)
        out: list[ScanResult | ScanError] = []
        for item in found:
            if isinstance(item, ScanResult | ScanError):
                out.append(item)
            else:
                raise item  # cancellation, or a bug: not a scan result
        return out

    async def version(self, max_age: float = 30.0) -> ClamdVersion:
        """clamd's VERSION, cached for max_age seconds (it changes on signature reload)."""
        cached = self._version
        if cached and time.monotonic() - cached[0] < max_age:
            return cached[1]
        version = await self._run(self.version_sync)
        self._version = (time.monotonic(), version)
        return version

    async def ping(self) -> bool:
        return await self._run(self.ping_sync)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
