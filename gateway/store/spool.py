"""The durable spool: what we acknowledged with 250 and have not yet handed on.

A job is one file, `queue/<id>.job`: a header line, the job's state (envelope and
per-recipient delivery state, JSON) and the copy to deliver. It is written in tmp/,
synced as written (O_DSYNC) and renamed into queue/, and queue/ is fsynced before the
client hears 250: queue/ only ever holds whole jobs. A later state (after a delivery
attempt, a hold) goes to `queue/<id>.json` the same way (tmp/, rename) and overrides
the state in the .job; the copy is never rewritten. A job leaves the spool only after
the next hop accepted (or we bounced) every recipient: the .job first, then its .json
(a .json without its .job is dropped at recovery).

Spools of versions before the one-file job (`<id>.eml` + `<id>.json`) are converted
to .job files by `recover` and moved as they are by `adopt`.
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


_MAGIC = b"MWJOB1 "
_HEAD = 4096  # read at once for a job's state: the header line and, mostly, all of it


def _pack(job: Job, data: bytes) -> bytes:
    state = job.to_json()
    return b"".join((_MAGIC, b"%d\n" % len(state), state, data))


def _header(head: bytes) -> tuple[int, int]:
    """(offset of the state, its length) from the start of a .job file."""
    end = head.find(b"\n", 0, 32)
    if not head.startswith(_MAGIC) or end < 0:
        raise ValueError("not a job file (no header line)")
    return end + 1, int(head[len(_MAGIC) : end])


def _unpack(blob: bytes) -> tuple[bytes, bytes]:
    """(state, data) of a whole .job file."""
    start, length = _header(blob)
    if len(blob) < start + length:
        raise ValueError("job file shorter than its header says")
    return blob[start : start + length], blob[start + length :]


def _read_state(path: str) -> tuple[bytes, int]:
    """A .job file's state without its data, and the data's size."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
        start, length = _header(head)
        state = head[start : start + length]
        if len(state) < length:
            state += fh.read(length - len(state))
        if len(state) < length:
            raise ValueError("job file shorter than its header says")
        size = os.fstat(fh.fileno()).st_size
    return state, size - start - length


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
        # jobs with a .json of a later state (`update`): only they need a second unlink
        self._stated: set[str] = set()

    def _job_path(self, job_id: str) -> str:
        return os.path.join(self._queue, job_id) + ".job"

    def _state_path(self, job_id: str) -> str:
        return os.path.join(self._queue, job_id) + ".json"

    def write(self, jobs: Iterable[tuple[Job, bytes]]) -> None:
        """Make every job durable: its .job file written and synced in tmp/ and renamed
        into queue/, then queue/ fsynced, which makes the names durable. Five system
        calls a job (open, write, close, rename; the fsync shared), each a hand-over of
        the GIL under load; two files a job took nine."""
        written = False
        for job, data in jobs:
            tmp = os.path.join(self._tmp, job.id) + ".job"
            _write_synced(tmp, _pack(job, data))
            os.replace(tmp, self._job_path(job.id))
            written = True
        if written:
            os.fsync(self._queue_fd)

    def update(self, job: Job) -> None:
        """Replace a job's state atomically (after a delivery attempt): a .json beside
        its .job, which overrides the state in the .job."""
        tmp = os.path.join(self._tmp, job.id) + ".json"
        _write_synced(tmp, job.to_json())
        self._stated.add(job.id)
        os.replace(tmp, self._state_path(job.id))
        os.fsync(self._queue_fd)

    def remove(self, job_ids: Iterable[str]) -> None:
        """Forget jobs: the .job first (so a crash leaves at most a .json without data,
        which recovery drops, never a job with an older state), then its .json if it
        has one. Not fsynced: if a power cut undoes the removal, the copy is delivered
        again (at least once, never lost)."""
        for job_id in job_ids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._job_path(job_id))
            if job_id in self._stated:
                self._stated.discard(job_id)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._state_path(job_id))

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
        """The copy to deliver."""
        return _unpack(_read(self._job_path(job_id)))[1]

    def load(self, job_id: str) -> Job:
        try:
            return Job.from_json(_read(self._state_path(job_id)))
        except FileNotFoundError:
            return Job.from_json(_read_state(self._job_path(job_id))[0])

    def recover(self) -> list[Job]:
        """All jobs on disk, after clearing what a crash left half-written.

        Files in tmp/ were never renamed into queue/: a job's first write was never
        acknowledged (the 250 comes after the rename and the directory fsync), a later
        state was not the latest on disk; so they go. A .json without its .job is what
        a crash in `remove` leaves: it goes too. Jobs of the two-file layout are
        converted first (`_convert`).
        """
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
        self._convert()
        jobs = []
        self._stated.clear()
        states = {p.name[: -len(".json")] for p in self.queue.glob("*.json")}
        for path in sorted(self.queue.glob("*.job")):
            job_id = path.name[: -len(".job")]
            try:
                if job_id in states:
                    job = Job.from_json(path.with_suffix(".json").read_bytes())
                    self._stated.add(job_id)
                else:
                    job = Job.from_json(_read_state(os.fspath(path))[0])
            except (ValueError, TypeError, KeyError) as exc:
                log.error("spool: %s is unreadable (%s); moved aside", path.name, exc)
                path.rename(path.with_suffix(".job.corrupt"))
                continue
            jobs.append(job)
        known = {j.id for j in jobs}
        for job_id in sorted(states - known):
            if not (self.queue / f"{job_id}.job.corrupt").exists():
                log.error("spool: %s.json has no job file; removing it", job_id)
                (self.queue / f"{job_id}.json").unlink()
        return jobs

    def _convert(self) -> None:
        """Jobs of the two-file layout (`<id>.eml`, the copy, and `<id>.json`, the
        state) as .job files: each written and renamed like a new job, queue/ fsynced,
        then the two files removed. A crash between leaves the .job and the old files:
        the .job wins and the old files go. An .eml without its .json was never
        acknowledged and goes; a .json without its .eml is kept for the check above."""
        converted = []
        for eml in sorted(self.queue.glob("*.eml")):
            job_id = eml.name[: -len(".eml")]
            meta, done = eml.with_suffix(".json"), self.queue / f"{job_id}.job"
            if done.exists():
                converted.append(eml)
                continue
            if not meta.exists():
                if not meta.with_suffix(".json.corrupt").exists():
                    log.warning("spool: removing unacknowledged partial write %s", eml.name)
                    eml.unlink()
                continue
            try:
                job = Job.from_json(meta.read_bytes())
            except (ValueError, TypeError, KeyError) as exc:
                log.error("spool: %s is unreadable (%s); moved aside", meta.name, exc)
                meta.rename(meta.with_suffix(".json.corrupt"))
                continue
            tmp = os.path.join(self._tmp, job_id) + ".job"
            _write_synced(tmp, _pack(job, eml.read_bytes()))
            os.replace(tmp, done)
            converted.append(eml)
        if converted:
            os.fsync(self._queue_fd)
            for eml in converted:
                eml.with_suffix(".json").unlink(missing_ok=True)
                eml.unlink()
            log.warning("spool: %d job(s) converted to .job files", len(converted))

    def adopt(self, other: Spool) -> int:
        """Move every complete job of another spool directory into this one (same
        file system: renames), the .job before its .json (jobs of the two-file layout:
        the .eml before the .json, converted by `recover`); returns how many."""
        moved = 0
        for path in sorted(other.queue.glob("*.job")):
            state = path.with_suffix(".json")
            os.replace(path, self.queue / path.name)
            if state.exists():
                os.replace(state, self.queue / state.name)
            moved += 1
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
        for path in sorted(self.queue.glob("*.job")):
            try:
                jobs.append(self.load(path.name[: -len(".job")]))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # removed or being replaced right now
        return jobs

    def size_of(self, job_id: str) -> int:
        try:
            return _read_state(self._job_path(job_id))[1]
        except (OSError, ValueError):
            return 0
