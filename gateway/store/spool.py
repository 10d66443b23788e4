"""The durable spool: what we acknowledged with 250 and have not yet handed on.

A job is two files in queue/: `<id>.eml` (the copy to deliver, never changed)
and `<id>.json` (envelope and per-recipient delivery state, replaced
atomically). The data is written in queue/ under its name, the state in tmp/ and
renamed into queue/ after it (a .json always has its .eml; an .eml without its
.json was never acknowledged and goes at recovery); each is synced as it is
written (O_DSYNC), and the directory is fsynced before the client hears 250. A
job leaves the spool only after the next hop accepted (or we bounced) every
recipient.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

from gateway.model import RcptStatus

log = logging.getLogger(__name__)


def new_queue_id() -> str:
    """Unique across nodes and sortable by time: microseconds in hex + 32 random bits."""
    return f"{time.time_ns() // 1000:013X}{_random_hex8()}"


# The random bits come from the system's randomness as before, read for 512 ids at a
# time: one read a message released the GIL on the event loop (getrandom) and let a
# waiting thread in. Cleared in a forked child, which must not repeat its parent's.
_RANDOM_IDS = 512
_random_left: list[str] = []
_random_lock = threading.Lock()
os.register_at_fork(after_in_child=_random_left.clear)


def _random_hex8() -> str:
    with _random_lock:
        if not _random_left:
            text = secrets.token_hex(4 * _RANDOM_IDS).upper()
            _random_left.extend(text[i : i + 8] for i in range(0, len(text), 8))
        return _random_left.pop()


@dataclass
class RcptState:
    rcpt: str
    status: str = RcptStatus.PENDING
    last_error: str | None = None
    dsn_status: str | None = None  # enhanced status for a bounce, e.g. "5.1.1"


@dataclass
class Job:
    """One copy of a message for a group of recipients (or a bounce we send)."""

    id: str
    queue_id: str
    mail_from: str
    rcpts: list[RcptState]
    received_at: float  # epoch seconds; the retry window counts from here
    kind: str = "message"  # message | dsn | release
    smtputf8: bool = False
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def pending(self) -> list[RcptState]:
        return [r for r in self.rcpts if r.status == RcptStatus.PENDING]

    def to_json(self) -> bytes:
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["rcpts"] = [vars(r) for r in self.rcpts]
        return json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Job:
        raw = json.loads(data)
        raw["rcpts"] = [RcptState(**r) for r in raw["rcpts"]]
        return cls(**raw)


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SYNCED = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_DSYNC


def _write_synced(path: str, data: bytes) -> None:
    """Create `path` with `data`, on disk when this returns: opened with O_DSYNC, each
    write returns once its data and the metadata needed to read it back (the size,
    the blocks) are stored, as after fdatasync. Plain os calls: open() would add
    fstat, ioctl and lseek, and each system call is a GIL hand-over under load (this
    way three a file: open, write, close)."""
    fd = os.open(path, _SYNCED, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


class Spool:
    """Blocking file operations; callers run them in a thread.

    A job's file names are plain strings, never pathlib paths: pathlib interns every
    name it parses (sys.intern), so each message put two to four names of its own into
    the interpreter's table of interned strings; that table, which the imported
    libraries fill to the edge of a resize, was reallocated at twice its size (3.7 MiB)
    after about 23,000 messages, and the memory stayed (docs/performance.md)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.queue = self.root / "queue"
        self.tmp = self.root / "tmp"
        for d in (self.queue, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._queue = os.fspath(self.queue)
        self._tmp = os.fspath(self.tmp)
        # queue/ stays open for its fsyncs (one system call a write, not three)
        self._queue_fd = os.open(self._queue, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        weakref.finalize(self, os.close, self._queue_fd)
        self._finished: collections.deque[str] = collections.deque()  # see `finish`

    def _paths(self, job_id: str) -> tuple[str, str]:
        base = os.path.join(self._queue, job_id)
        return base + ".eml", base + ".json"

    def write(self, jobs: Iterable[tuple[Job, bytes]]) -> None:
        """Make every job durable: data written and synced in queue/ (before its state:
        a .json always has its .eml), state synced in tmp/ and renamed, then queue/
        fsynced, which makes both names durable."""
        written = False
        for job, data in jobs:
            eml, meta = self._paths(job.id)
            tmp_json = os.path.join(self._tmp, job.id) + ".json"
            _write_synced(eml, data)
            _write_synced(tmp_json, job.to_json())
            os.replace(tmp_json, meta)
            written = True
        if written:
            os.fsync(self._queue_fd)

    def update(self, job: Job) -> None:
        """Replace a job's state atomically (after a delivery attempt)."""
        tmp = os.path.join(self._tmp, job.id) + ".json"
        _write_synced(tmp, job.to_json())
        os.replace(tmp, self._paths(job.id)[1])
        os.fsync(self._queue_fd)

    def remove(self, job_ids: Iterable[str]) -> None:
        """Forget jobs: state first (so a crash leaves an orphan .eml, never a
        .json without data), then the data. Not fsynced: if a power cut undoes
        the removal, the copy is delivered again (at least once, never lost)."""
        for job_id in job_ids:
            for path in reversed(self._paths(job_id)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def finish(self, job_id: str) -> None:
        """Mark a job for removal by the next `remove_finished`, in whatever thread
        calls it: under load the intake's disk threads, after each spool write, so a
        delivered job costs no thread hop of its own. Thread-safe (a deque)."""
        self._finished.append(job_id)

    def remove_finished(self) -> int:
        """Remove the jobs marked by `finish` so far (see `remove`); returns how many."""
        removed = 0
        while True:
            try:
                job_id = self._finished.popleft()
            except IndexError:
                return removed
            self.remove([job_id])
            removed += 1

    @property
    def finished(self) -> int:
        """Jobs marked by `finish` and not removed yet."""
        return len(self._finished)

    def read(self, job_id: str) -> bytes:
        return _read(self._paths(job_id)[0])

    def load(self, job_id: str) -> Job:
        return Job.from_json(_read(self._paths(job_id)[1]))

    def recover(self) -> list[Job]:
        """All jobs on disk, after clearing what a crash left half-written.

        Files in tmp/ and .eml files without .json were never acknowledged (the
        250 comes after the rename and the directory fsync), so they go.
        """
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
        jobs = []
        for meta in sorted(self.queue.glob("*.json")):
            eml = meta.with_suffix(".eml")
            if not eml.exists():
                log.error("spool: %s has no data file; removing its state", meta.name)
                meta.unlink()
                continue
            try:
                jobs.append(Job.from_json(meta.read_bytes()))
            except (ValueError, TypeError, KeyError) as exc:
                log.error("spool: %s is unreadable (%s); moved aside", meta.name, exc)
                meta.rename(meta.with_suffix(".json.corrupt"))
        known = {j.id for j in jobs}
        for eml in self.queue.glob("*.eml"):
            if eml.stem not in known and not eml.with_suffix(".json.corrupt").exists():
                log.warning("spool: removing unacknowledged partial write %s", eml.name)
                eml.unlink()
        return jobs

    def adopt(self, other: Spool) -> int:
        """Move every complete job of another spool directory into this one (same
        file system: renames), data before state as in `write`; returns how many."""
        moved = 0
        for meta in sorted(other.queue.glob("*.json")):
            eml = meta.with_suffix(".eml")
            if not eml.exists():
                continue
            os.replace(eml, self.queue / eml.name)
            os.replace(meta, self.queue / meta.name)
            moved += 1
        if moved:
            _fsync_dir(self.queue)
            _fsync_dir(other.queue)
        return moved

    def list_jobs(self) -> list[Job]:
        """Jobs on disk, read-only (for `mailwarden queue` while the server runs)."""
        jobs = []
        for meta in sorted(self.queue.glob("*.json")):
            try:
                jobs.append(Job.from_json(meta.read_bytes()))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # removed or being replaced right now
        return jobs

    def size_of(self, job_id: str) -> int:
        try:
            return os.stat(self._paths(job_id)[0]).st_size
        except OSError:
            return 0
