"""Where the gateway's log lines go and how they look: `[log] format`.

"text" is the classic `time level logger: message` line; "json" prints every
record as one JSON object a line, with an event's fields (gateway.monitor.events)
at the top level, so `jq 'select(.event == "verdict")'` answers "why was this mail
rejected". Lines are formatted and written by a listener thread fed through a
queue: the event loop only hands a record over, it never waits on stderr. The
listener takes what has queued up, writes it in one go and then rests
BATCH_SECONDS: under load it is woken a few times a second, not for every record.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
import time
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from gateway.monitor.events import EVENTS

_LISTENER: list[logging.handlers.QueueListener] = []
BATCH_SECONDS = 0.05  # the listener's rest between batches: how late a line may be


class JsonFormatter(logging.Formatter):
    """One JSON object per record; events keep their own fields."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if self.worker is not None:
            out["worker"] = self.worker
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            out.update(event)
        else:
            out["message"] = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            if record.exc_text:
                out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The text line, its time ISO 8601 in UTC with the zone (as every time we print)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def text_format(worker: int | None = None) -> str:
    tag = f" w{worker}" if worker is not None else ""
    return f"%(asctime)s %(levelname)s{tag} %(name)s: %(message)s"


def configure(
    fmt: Literal["text", "json"],
    level: int,
    worker: int | None = None,
    stream: TextIO | None = None,
) -> None:
    """Replace the root handlers with one queue-fed handler in the chosen format.

    Events are logged at INFO whatever `level` is (-v): they are the record of what
    the gateway did, not chatter."""
    handler = _BatchHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(worker))
    else:
        handler.setFormatter(TextFormatter(text_format(worker)))
    for old in _LISTENER:
        old.stop()
    _LISTENER.clear()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = _BatchListener(records, handler)
    listener.start()
    _LISTENER.append(listener)
    root = logging.getLogger()
    for old_handler in list(root.handlers):
        root.removeHandler(old_handler)
    root.addHandler(_QueueHandler(records))
    root.setLevel(level)
    EVENTS.setLevel(logging.INFO)
    # Neither format prints where a record was logged from, nor its thread or process:
    # not looked up for every record (the logging HOWTO's "Optimization"; a verdict
    # and a delivery event a message)
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def stop() -> None:
    """Write out what is queued (also at exit)."""
    for listener in _LISTENER:
        listener.stop()
    _LISTENER.clear()


atexit.register(stop)


class _QueueHandler(logging.handlers.QueueHandler):
    """Events go to the queue as they are: their line (JSON or text) is made in the
    writer thread. Other records are prepared as usual (message and traceback text
    made here, while their arguments are still what they were)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if getattr(record, "event", None) is not None:
            return record
        return super().prepare(record)


class _BatchHandler(logging.StreamHandler):
    """Collects a batch's lines and writes them with one write (`write_batch`)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record) + self.terminator)
        except Exception:  # noqa: BLE001 - logging's own convention: report, go on
            self.handleError(record)

    def write_batch(self) -> None:
        if not self._lines:
            return
        text, self._lines = "".join(self._lines), []
        try:
            self.stream.write(text)
            self.flush()
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: never raise from logging
            self.handleError(logging.makeLogRecord({"msg": "a batch of log lines"}))


class _BatchListener(logging.handlers.QueueListener):
    """Waits for a record, takes every record queued behind it, writes them, then
    rests BATCH_SECONDS: a record handed over meanwhile wakes nobody."""

    def __init__(self, records: queue.SimpleQueue, handler: _BatchHandler) -> None:
        super().__init__(records, handler, respect_handler_level=False)
        self.records, self.writer = records, handler

    def _monitor(self) -> None:
        records = self.records
        while True:
            record = records.get()
            while record is not None:  # None: QueueListener.stop's sentinel
                self.handle(record)
                try:
                    record = records.get_nowait()
                except queue.Empty:
                    break
            self.writer.write_batch()
            if record is None:
                return
            time.sleep(BATCH_SECONDS)
