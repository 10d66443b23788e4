"""Queue control requests, as postqueue -f / postsuper -h|-H|-d are to Postfix.

The running gateway owns its spool's job state (it rewrites a job's .json after
every attempt), so `mailwarden queue hold|release|flush|delete` does not edit jobs
itself: it drops a request file in `<spool>/control/`, the gateway applies it on its
next scheduler round (within `[delivery] poll_interval`) and answers in a `.done`
file next to it. With no gateway running, the request waits for the next start
and is applied before any delivery.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

CONTROL_DIR = "control"
OPS = ("hold", "release", "flush", "delete")
STALE_ANSWER_SECONDS = 3600.0


@dataclass(frozen=True)
class Request:
    id: str
    op: str  # one of OPS
    job: str | None  # a job id or a queue id; None: every job (flush only)
    by: str
    at: str  # ISO 8601 with zone

    def matches(self, job_id: str, queue_id: str) -> bool:
        return self.job is None or self.job in (job_id, queue_id)


def _dir(spool_root: Path) -> Path:
    path = Path(spool_root) / CONTROL_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def submit(
    spool_root: Path, op: str, job: str | None, by: str, request_id: str | None = None
) -> Request:
    """Write a request atomically (tmp name, then rename) and return it. A caller that
    may write the same request twice (gateway/app/queue_requests.py after a crash) names
    it, so the second write replaces the first instead of adding a second request."""
    if op not in OPS:
        raise ValueError(f"unknown queue operation {op!r}")
    request = Request(request_id or uuid.uuid4().hex, op, job, by, datetime.now(UTC).isoformat())
    directory = _dir(spool_root)
    tmp = directory / f".{request.id}.tmp"
    tmp.write_text(json.dumps(asdict(request)))
    os.replace(tmp, directory / f"{request.id}.json")
    return request


def pending(spool_root: Path) -> list[Request]:
    """Requests not answered yet, oldest first (for the gateway)."""
    directory = Path(spool_root) / CONTROL_DIR
    if not directory.is_dir():
        return []
    stale = time.time() - STALE_ANSWER_SECONDS
    for done in directory.glob("*.done"):  # answers nobody waited for (the gateway was down)
        with contextlib.suppress(OSError):
            if done.stat().st_mtime < stale:
                done.unlink()
    found = []
    for path in sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns):
        try:
            found.append(Request(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue  # half-gone or foreign: ignored
    return found


def answer(spool_root: Path, request: Request, ok: bool, message: str, jobs: list[str]) -> None:
    directory = _dir(spool_root)
    done = {"ok": ok, "message": message, "jobs": jobs, "at": datetime.now(UTC).isoformat()}
    tmp = directory / f".{request.id}.done.tmp"
    tmp.write_text(json.dumps(done))
    os.replace(tmp, directory / f"{request.id}.done")
    (directory / f"{request.id}.json").unlink(missing_ok=True)


def answer_of(spool_root: Path, request_id: str) -> dict | None:
    """The gateway's answer if there is one yet, left in place (see forget)."""
    try:
        return json.loads((Path(spool_root) / CONTROL_DIR / f"{request_id}.done").read_text())
    except (FileNotFoundError, ValueError):
        return None


def forget(spool_root: Path, request_id: str) -> None:
    (Path(spool_root) / CONTROL_DIR / f"{request_id}.done").unlink(missing_ok=True)


def wait_answer(spool_root: Path, request: Request, timeout: float) -> dict | None:
    """The gateway's answer, or None when no gateway took the request within `timeout`."""
    path = Path(spool_root) / CONTROL_DIR / f"{request.id}.done"
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = json.loads(path.read_text())
        except FileNotFoundError:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
            continue
        path.unlink(missing_ok=True)
        return result
