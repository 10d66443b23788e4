"""From a received message to durable outcomes, and only then the SMTP reply.

Order of writes for an accepted message: the spool (fsynced), then one
database transaction with the ledger rows and quarantine items, then 250. If
the database fails, the spool files are removed and the client hears 451, so
nothing acknowledged is lost and nothing refused is delivered. The commit runs
shielded: a client that disconnects after DATA cannot cut it in half.

One hand-over from the event loop: a disk thread writes the spool and passes the
rows straight on to the database writer, which commits them with the rows of the
other messages waiting at that moment and wakes the event loop once for all.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from gateway.address import domain_of
from gateway.mail.received import received_context
from gateway.mail.render import render
from gateway.mail.structure import scan_structure
from gateway.model import (
    DELIVERABLE,
    Action,
    Decision,
    Envelope,
    MessageContext,
    RcptStatus,
    Rendering,
    Reply,
    Verdict,
)
from gateway.monitor import events
from gateway.pipeline.run import Pipeline
from gateway.smtp.outbound_guard import OutboundGuard
from gateway.store import attachments, bulk, ledger, quarantine
from gateway.store.db import Database, Ticket, batched
from gateway.store.spool import Job, RcptState, Spool, new_queue_id

log = logging.getLogger(__name__)

TEMPFAIL_REPLY = Reply(451, "4.3.0", "Temporary failure, please try again later")
HELD = (Action.QUARANTINE, Action.REJECT)
SPOOL_THREADS = 16
# (envelope, raw) -> (envelope left to filter, the reply when nothing is left)
ReportHook = Callable[[Envelope, bytes], Awaitable[tuple[Envelope, Reply | None]]]


def _quarantine_kind(decision: Decision) -> str:
    if decision.virus and decision.virus.viruses and not decision.virus.cleaned:
        return quarantine.VIRUS
    if decision.action == Action.REJECT:
        return quarantine.REJECTED
    return quarantine.SPAM if decision.spam else quarantine.POLICY


class Intake:
    def __init__(
        self,
        pipeline: Pipeline,
        spool: Spool,
        db: Database,
        hostname: str,
        node: str,
        on_spooled: Callable[[list[tuple[Job, bytes]]], None] = lambda jobs: None,
        drop_field: Callable[[bytes], bool] | None = None,
        keep_attachments: bool = False,
        report_addresses: ReportHook | None = None,
        mime_limits: tuple[int, int] = (50, 10_000),
        outbound_guard: OutboundGuard | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.spool = spool
        self.db = db
        self.hostname = hostname
        self.node = node
        self.on_spooled = on_spooled
        self.drop_field = drop_field
        self.keep_attachments = keep_attachments  # for `mailwarden rescan`
        self.report_addresses = report_addresses  # gateway/app/report_addresses.py
        self.mime_limits = mime_limits  # depth, parts
        self.outbound_guard = outbound_guard  # counts and suspends outbound senders
        self._background: set[asyncio.Task] = set()
        self.in_flight = 0
        # spool writes wait on fsync, not on the CPU: as many at once as messages
        # arrive together, so a slow disk delays each message without queueing them
        self._disk = _DiskThreads(SPOOL_THREADS, "spool")

    async def receive(
        self, envelope: Envelope, raw: bytes, received_at: datetime | None = None
    ) -> Reply:
        """Filter one message and record the outcome; returns the SMTP reply. Any
        unexpected failure answers 451 with the traceback logged under the queue id
        (the spool and the ledger are written all or nothing, see `_accept`)."""
        if self.report_addresses is not None:  # users' reports are recorded, not delivered
            envelope, reply = await self.report_addresses(envelope, raw)
            if reply is not None:
                return reply
        ctx = received_context(new_queue_id(), envelope, raw, received_at)
        self.in_flight += 1
        try:
            try:
                structure = scan_structure(ctx.raw, *self.mime_limits)
                ctx.__dict__["structure"] = structure  # the cached property, with our limits
                if structure.exceeded:
                    return await self._refuse_structure(ctx, structure.exceeded)
                verdict = await self.pipeline.run(ctx)
                if envelope.outbound and self.outbound_guard is not None:
                    task = asyncio.create_task(self.outbound_guard.count(verdict))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
            except Exception:
                log.exception("%s: pipeline failed", ctx.queue_id)
                return TEMPFAIL_REPLY
            try:
                return await asyncio.shield(self._commit(verdict))
            except Exception:
                log.exception("%s: could not commit the message", ctx.queue_id)
                return TEMPFAIL_REPLY
        finally:
            self.in_flight -= 1

    async def _refuse_structure(self, ctx: MessageContext, exceeded: str) -> Reply:
        """Over the MIME limits: refused before parsing, recorded as a refusal."""
        env = ctx.envelope
        reply = Reply(550, "5.6.0", f"Message structure refused: {exceeded}")
        row = {
            "at": datetime.now(UTC),
            "client_ip": env.client_ip,
            "client_hostname": env.client_hostname,
            "helo": env.helo[:255],
            "mail_from": env.mail_from[:512],
            "rcpt": ",".join(env.rcpt_tos)[:512],
            "stage": "data",
            "source": "mime_limits",
            "reply": str(reply),
        }
        try:
            await self.db.write(ledger.record_refusal, row)
        except Exception:
            log.exception("%s: could not record the refusal", ctx.queue_id)
        log.info("%s: refused: %s", ctx.queue_id, reply)
        return reply

    async def _commit(self, verdict: Verdict) -> Reply:
        decisions = verdict.decisions
        tempfails = [d for d in decisions if d.action == Action.TEMPFAIL]
        if tempfails:
            reply = tempfails[0].reply or TEMPFAIL_REPLY
            await self._record_refusal(verdict, RcptStatus.TEMPFAILED, reply)
            return reply
        if all(d.action == Action.REJECT for d in decisions):
            reply = decisions[0].reply or Reply(550, "5.7.1", "Message refused")
            await self._record_refusal(verdict, RcptStatus.REJECTED, reply)
            return reply
        return await self._accept(verdict)

    async def _record_refusal(self, verdict: Verdict, outcome: str, reply: Reply) -> None:
        status = {d.rcpt: outcome for d in verdict.decisions}
        row = ledger.message_row(verdict, outcome, str(reply), self.node, datetime.now(UTC))
        rows = ledger.recipient_rows(verdict, status, {})
        try:
            await self.db.write(_insert, row, rows, [])
        except Exception:
            log.exception("%s: could not record the %s message", verdict.ctx.queue_id, outcome)
        events.verdict(verdict, outcome, reply)

    async def _accept(self, verdict: Verdict) -> Reply:
        ctx = verdict.ctx
        qid = ctx.queue_id
        reply = Reply(250, "2.0.0", f"Ok: queued as {qid}")
        items, item_of = self._quarantine_items(verdict)
        jobs = self._delivery_jobs(verdict, item_of)
        status = {
            d.rcpt: RcptStatus.PENDING if d.action in DELIVERABLE else RcptStatus.QUARANTINED
            for d in verdict.decisions
        }
        now = datetime.now(UTC)
        row = ledger.message_row(verdict, "accepted", str(reply), self.node, now, digest=False)
        rows = ledger.recipient_rows(verdict, status, item_of)
        loop = asyncio.get_running_loop()
        stored: asyncio.Future[None] = loop.create_future()
        try:
            if jobs or items:  # one hand-over: the disk thread passes the rows to the writer
                kept = self._kept_attachments(verdict) if jobs else []
                self._disk.submit(self._store, jobs, ctx.raw, row, rows, items, kept, stored, loop)
            else:
                ledger.add_digest(row, ctx.raw)
                self.db.put(_insert, (row, rows, items), stored, loop)
            await stored
        except Exception:
            log.exception("%s: could not store the message durably; answering 451", qid)
            events.verdict(verdict, "tempfailed", TEMPFAIL_REPLY)
            if jobs:
                await asyncio.to_thread(self.spool.remove, [job.id for job, _ in jobs])
            return TEMPFAIL_REPLY
        if jobs:
            self.on_spooled(jobs)
        events.verdict(verdict, "accepted", reply)
        return reply

    def _store(
        self,
        jobs: list[tuple[Job, bytes]],
        raw: bytes,
        row: dict,
        rows: list[dict],
        items: list[dict[str, Any]],
        kept: list[attachments.Attachment],
        stored: asyncio.Future[None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """In a disk thread: the digest of the message (off the loop: see
        `ledger.message_row`), the spool (synced), then the ledger rows handed straight
        to the database writer, which settles `stored` when their group commits (one
        wake-up of the event loop for both). Then, while the commit runs, the jobs
        delivered meanwhile are removed (`Spool.finish`). The attachments kept for
        rescans are packed after that, here, and stored in a later write only if the
        rows committed: the 250 does not wait for them, and a failure never refuses
        mail. The quarantine items' copy is packed here, once for all of them (on the
        loop it held the loop for about 0.4 ms a held 10 KB message); a message
        without jobs comes here for that alone."""
        try:
            ledger.add_digest(row, raw)
            if items:
                held = quarantine.pack(raw)
                for item in items:
                    item["data"] = held
            if jobs:
                self._spool_write(jobs, row, rows)
            written = self.db.put(_insert, (row, rows, items), stored, loop)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting _accept
            loop.call_soon_threadsafe(_fail, stored, exc)
            return
        try:  # delivered jobs, here rather than in a thread hop of their own
            self.spool.remove_finished()
        except OSError:
            log.exception("could not remove delivered jobs from the spool")
        if not kept:
            return
        queue_id = jobs[0][0].queue_id
        try:
            packed = attachments.pack(kept)
        except Exception:
            log.exception("%s: could not keep attachments for rescans", queue_id)
            return
        self.db.put(_store_attachments, (written, queue_id, packed))

    def _spool_write(self, jobs: list[tuple[Job, bytes]], row: dict, rows: list[dict]) -> None:
        """The ledger rows ride along in the first job, so a crash before the commit
        loses nothing; their JSON columns are encoded here, once, for the job and the
        database writer both (not on the event loop)."""
        ledger.encode_json(row, rows)
        jobs[0][0].meta["ledger"] = {
            "message": ledger.to_jsonable(row),
            "recipients": [ledger.to_jsonable(r) for r in rows],
        }
        self.spool.write(jobs)

    def _kept_attachments(self, verdict: Verdict) -> list[attachments.Attachment]:
        """Delivered attachments to keep for retro-detection (`mailwarden rescan`)."""
        if not self.keep_attachments:
            return []
        infections = [
            i
            for by_filter in verdict.results.values()
            for r in by_filter.values()
            for i in r.infections
        ]
        try:
            return attachments.kept_after_delivery(verdict.ctx.parts, infections)
        except Exception:
            log.exception("%s: could not keep attachments for rescans", verdict.ctx.queue_id)
            return []

    def _delivery_jobs(self, verdict: Verdict, item_of: dict[str, str]) -> list[tuple[Job, bytes]]:
        """One job per distinct rendering (and kept-original item, named in notices);
        outbound mail also one per recipient domain (each has its own MX)."""
        ctx = verdict.ctx
        outbound = ctx.envelope.outbound
        groups: dict[tuple[Rendering, str | None, str], list[str]] = {}
        for d in verdict.decisions:
            if d.action in DELIVERABLE:
                domain = domain_of(d.rcpt) if outbound else ""
                groups.setdefault((d.rendering, item_of.get(d.rcpt), domain), []).append(d.rcpt)
        jobs = []
        for index, ((rendering, item_id, _), rcpts) in enumerate(groups.items()):
            data = render(ctx, rendering, rcpts, self.hostname, self.drop_field, item_id)
            job = Job(
                id=f"{ctx.queue_id}.{index}",
                queue_id=ctx.queue_id,
                mail_from=ctx.envelope.mail_from,
                rcpts=[RcptState(r) for r in rcpts],
                received_at=ctx.received_at.timestamp(),
                smtputf8=ctx.envelope.smtputf8,
            )
            jobs.append((job, data))
        return jobs

    def _quarantine_items(self, verdict: Verdict) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """One item per (domain, kind) for held copies, plus kept virus originals."""
        ctx = verdict.ctx
        groups: dict[tuple[str, str], list[Decision]] = {}
        for d in verdict.decisions:
            if d.action in HELD:
                groups.setdefault((domain_of(d.rcpt), _quarantine_kind(d)), []).append(d)
            elif d.virus and d.virus.original_kept:
                key = (domain_of(d.rcpt), quarantine.VIRUS_ORIGINAL)
                groups.setdefault(key, []).append(d)
        items, item_of = [], {}
        for index, ((domain, kind), group) in enumerate(groups.items()):
            item_id = f"{ctx.queue_id}.q{index}"
            reasons = sorted({r for d in group for r in d.reasons})
            items.append(
                quarantine.item_row(
                    item_id,
                    ctx.queue_id,
                    domain,
                    [d.rcpt for d in group],
                    kind,
                    "; ".join(reasons),
                    ctx.raw,
                    ctx.received_at,
                    mail_from=ctx.envelope.mail_from,
                    subject=next(iter(ctx.header("Subject")), None),
                    score=max(d.score for d in group),
                    data=b"",  # packed in the disk thread (`_store`)
                )
            )
            for d in group:
                item_of[d.rcpt] = item_id
        return items, item_of


class _DiskThreads:
    """Threads that take calls from one queue: the disk hop of every accepted message,
    without ThreadPoolExecutor's future, work item and idle semaphore per call (the
    called function hands its outcome back itself). Started with the first call."""

    def __init__(self, count: int, name: str) -> None:
        self.count, self.name = count, name
        self._calls: queue.SimpleQueue[tuple[Callable[..., None], tuple]] = queue.SimpleQueue()
        self._started = False

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        if not self._started:
            self._started = True
            for n in range(self.count):
                threading.Thread(target=self._run, name=f"{self.name}_{n}", daemon=True).start()
        self._calls.put((fn, args))

    def _run(self) -> None:
        calls = self._calls
        while True:
            fn, args = calls.get()
            try:
                fn(*args)
            except Exception:  # the thread lives on: `_store` hands its own errors back
                log.exception("%s thread: %s failed", self.name, getattr(fn, "__qualname__", fn))
            del fn, args  # not kept alive while waiting for the next call


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _insert_many(conn, calls: list[tuple]) -> None:
    ledger.record_many(conn, [(row, rows) for row, rows, _ in calls])
    bulk.executemany(conn, _INSERT_ITEMS, [item for _, _, some in calls for item in some])


_INSERT_ITEMS = quarantine.quarantine.insert()  # built once: its cache key is kept


@batched(_insert_many)  # new rows only: order-free within a group
def _insert(conn, row, rows, items) -> None:
    _insert_many(conn, [(row, rows, items)])


def _store_attachments_many(conn, calls: list[tuple]) -> None:
    """Attachments of messages whose ledger rows committed (in an earlier group, or in
    this one: then both commit or neither); none of a message answered 451."""
    kept = [(queue_id, packed) for written, queue_id, packed in calls if not written.failed]
    attachments.store_many(conn, kept, datetime.now(UTC))


@batched(_store_attachments_many)  # new rows, and last_seen of blobs: order-free
def _store_attachments(conn, written: Ticket, queue_id: str, packed: list) -> None:
    _store_attachments_many(conn, [(written, queue_id, packed)])
