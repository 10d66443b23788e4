"""The clamd client: INSTREAM on clamd sessions over a unix socket or TCP, in a thread pool.

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

Scans do not go through pyclamd: each worker thread keeps one clamd session
(`zIDSESSION`, `_Session`) open and sends its `zINSTREAM` commands on it, one
at a time (see `_send_and_read` for why not pipelined); clamd numbers each
reply. That saves a connection per scan and pyclamd's per-command work.
clamd closes a session when it restarts, after a size-limit error, or on its
own time-outs: a stream that a reused session did not answer is sent again on
a fresh one; on a fresh one the failure is the scan's error, as it was with one
connection per scan (never a clean result). VERSION and
PING still go through pyclamd, a connection each (VERSION is cached).

A stream larger than clamd's StreamMaxLength is never reported clean: it is a
`ScanResult` with status "too_large", whether we knew the limit beforehand
(`stream_max_length`) or clamd told us ("INSTREAM size limit exceeded").
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
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

    def close(self) -> None:
        self._sock.close()


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


_STREAM_END = struct.pack("!L", 0)
_SESSION_REPLY = re.compile(rb"^(\d+): (.*)$", re.S)


class _Closed(Exception):
    """clamd closed the session (or reset it) before answering every command."""


class _Session:
    """One clamd IDSESSION connection: numbered zINSTREAM commands, replies by number."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.next_id = 1
        self.used = False  # answered a command before: may have been closed since
        self._buffer = b""

    def _arm(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout("clamd did not answer in time")
        self.sock.settimeout(remaining)

    def send_stream(self, data: bytes | memoryview, deadline: float) -> int:
        """Send one zINSTREAM command with its data; returns the command's number."""
        number = self.next_id
        self.next_id += 1
        try:
            if len(data) <= CHUNK:
                self._arm(deadline)
                self.sock.sendall(
                    b"".join((b"zINSTREAM\0", struct.pack("!L", len(data)), data, _STREAM_END))
                    if data
                    else b"zINSTREAM\0" + _STREAM_END
                )
            else:
                view = memoryview(data)
                self._arm(deadline)
                self.sock.sendall(b"zINSTREAM\0")
                for start in range(0, len(view), CHUNK):
                    chunk = view[start : start + CHUNK]
                    self._arm(deadline)
                    self.sock.sendall(struct.pack("!L", len(chunk)))
                    self._arm(deadline)
                    self.sock.sendall(chunk)
                self._arm(deadline)
                self.sock.sendall(_STREAM_END)
        except TimeoutError:
            raise _Timeout("clamd stopped reading") from None
        return number

    def reply(self, deadline: float) -> tuple[int | None, bytes]:
        """The next reply: (command number, text); number None if clamd sent none."""
        while b"\0" not in self._buffer:
            self._arm(deadline)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                raise _Timeout("clamd did not answer in time") from None
            if not data:
                raise _Closed(self._buffer)
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\0")
        match = _SESSION_REPLY.match(line)
        if match is None:
            return None, line
        return int(match.group(1)), match.group(2).strip()

    def replies_after_close(self) -> list[tuple[int, bytes]]:
        """What clamd said before it closed (after it stopped reading a stream)."""
        out = []
        deadline = time.monotonic() + 1.0
        try:
            while True:
                number, text = self.reply(deadline)
                if number is not None:
                    out.append((number, text))
        except (OSError, _Timeout, _Closed):
            pass
        return out

    def close(self) -> None:
        self.sock.close()


def _verdict(text: bytes, size: int) -> ScanResult | ScanError:
    """One INSTREAM reply ('stream: OK', 'stream: NAME FOUND', '... ERROR') -> result."""
    if SIZE_LIMIT_REPLY in text and text.endswith(b"ERROR"):
        return ScanResult("too_large", size=size)
    words = text.decode(errors="replace")
    if words == "stream: OK":
        return ScanResult("clean", size=size)
    body = words.split(": ", 1)[1] if ": " in words else words
    reason, _, status = body.rpartition(" ")
    if status == "FOUND" and reason:
        return ScanResult("infected", virus=" ".join(reason.split()), size=size)
    if status == "ERROR":
        return ScanError(f"clamd: {' '.join(reason.split())} {status}".strip())
    return ScanError(f"clamd gave no verdict (said {text[:200]!r})")


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
        self._sessions: set[_Session] = set()
        self._sessions_lock = threading.Lock()
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

    def _open_session(self, deadline: float) -> _Session:
        family = socket.AF_UNIX if self.socket_path else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.connect(self.socket_path or self.address)  # type: ignore[arg-type]
            sock.sendall(b"zIDSESSION\0")
        except TimeoutError:
            sock.close()
            raise ScanError(
                f"cannot reach clamd at {self.target}: timed out after {self.timeout} s"
            ) from None
        except OSError as exc:
            sock.close()
            raise ScanError(f"cannot reach clamd at {self.target}: {exc}") from None
        session = _Session(sock)
        with self._sessions_lock:
            self._sessions.add(session)
        return session

    def _drop_session(self, session: _Session) -> None:
        if getattr(self._local, "session", None) is session:
            self._local.session = None
        with self._sessions_lock:
            self._sessions.discard(session)
        session.close()

    def _send_and_read(
        self,
        session: _Session,
        datas: list[bytes | memoryview],
        numbers: dict[int, int],
        results: dict[int, ScanResult | ScanError],
        todo: list[int],
        deadline: float,
    ) -> None:
        """Scan the streams `todo` (indices into datas) on one session, one command at
        a time, into `results`; `numbers` maps each command's number to its index.

        Not pipelined: clamd 1.4 leaves commands that arrive together in its buffer
        unread until more data comes (measured: the last 8-11 of a burst answered only
        "COMMAND READ TIMED OUT" after ReadTimeout, 120 s), and its manual asks
        clients to read every reply before sending more."""
        for index in todo:
            number = session.next_id
            numbers[number] = index  # before sending: clamd may answer, then hang up
            session.send_stream(datas[index], deadline)
            answer, text = session.reply(deadline)
            if answer != number:
                raise ScanError(f"clamd gave no verdict (said {text[:200]!r})")
            results[index] = _verdict(text, len(datas[index]))

    def scan_batch_sync(self, datas: list[bytes | memoryview]) -> list[ScanResult | ScanError]:
        """Scan streams one after the other on this thread's clamd session.

        A ScanError in place of a stream that was not scanned; never a clean result
        for one that clamd did not answer. One deadline (`timeout`) for the batch.
        """
        results: dict[int, ScanResult | ScanError] = {}
        todo = []
        for index, data in enumerate(datas):
            if len(data) > self.stream_max_length:
                results[index] = ScanResult("too_large", size=len(data))
            else:
                todo.append(index)
        deadline = time.monotonic() + self.timeout
        while todo:
            session: _Session | None = getattr(self._local, "session", None)
            numbers: dict[int, int] = {}
            failure: ScanError | None = None
            try:
                if session is None:
                    session = self._local.session = self._open_session(deadline)
                self._send_and_read(session, datas, numbers, results, todo, deadline)
                session.used = True
            except ScanError as exc:  # cannot connect, or a reply we cannot read
                failure = exc
            except _Timeout:
                failure = ScanError(f"clamd at {self.target} timed out after {self.timeout} s")
            except (OSError, _Closed) as exc:
                assert session is not None
                for number, text in session.replies_after_close():
                    if number in numbers and numbers[number] not in results:
                        results[numbers[number]] = _verdict(text, len(datas[numbers[number]]))
                too_large = any(
                    isinstance(r, ScanResult) and r.status == "too_large"
                    for i, r in results.items()
                    if i in todo
                )
                if not (session.used or too_large):
                    detail = exc if isinstance(exc, OSError) else "no reply"
                    failure = ScanError(f"clamd closed the connection: {detail}")
                # else: a session closed since its last use, or after a size-limit
                # error: the unanswered streams go again on a fresh one
            closed = failure is not None or any(
                i not in results or getattr(results[i], "status", "") == "too_large" for i in todo
            )  # clamd closes a session after a size-limit error
            if closed and session is not None:
                self._drop_session(session)
            if failure is not None:
                for index in todo:
                    results.setdefault(index, failure)
            todo = [i for i in todo if i not in results]
        out = [results[i] for i in range(len(datas))]
        for result in out:
            if isinstance(result, ScanError):
                if str(result).startswith(("cannot reach", "clamd closed", "clamd at")):
                    OUTAGES.failed("clamd", self.target, result)  # down, not one mail
            else:
                OUTAGES.ok("clamd", self.target)
        return out

    def scan_sync(self, data: bytes | memoryview) -> ScanResult:
        result = self.scan_batch_sync([data])[0]
        if isinstance(result, ScanError):
            raise result
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

    async def scan_many(
        self, datas: list[bytes], together_below: int = 256 * 1024
    ) -> list[ScanResult | ScanError]:
        """Scan several streams of one message, a ScanError in place of a failed one.

        Up to `together_below` bytes in all, one after the other on one session in
        one worker hop (a hop costs the event loop more than a small scan costs clamd); larger
        messages' parts in parallel, each in its own hop.
        """
        if len(datas) > 1 and sum(len(d) for d in datas) < together_below:
            return await self._run(self.scan_batch_sync, datas)
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
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, set()
        for session in sessions:
            session.close()
