"""SMTP out: spool jobs to the next hop, with retries, backoff and bounces.

Per recipient: 2xx done; 4xx (or no connection) retried on the configured
schedule; 5xx, or still failing when the retry window has passed, bounced with
a DSN to the sender (never to the null sender). A job leaves the spool only
when no recipient is pending. Bounces go to the next hop when the sender is in
one of our domains, otherwise to [delivery] bounce_relay or the sender's MX.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import itertools
import logging
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.adapters.dns import DnsError, NoRecord, Resolver
from gateway.address import domain_of
from gateway.config import Settings, parse_host_port
from gateway.delivery.dsn import build_dsn
from gateway.delivery.smtp_client import SmtpClient, SMTPException, accepted
from gateway.model import RcptStatus
from gateway.monitor import events
from gateway.outages import OUTAGES
from gateway.store import ledger, queue_view
from gateway.store import queue_control as control
from gateway.store.db import Database
from gateway.store.spool import Job, RcptState, Spool, new_queue_id
from gateway.tasks import cancel_and_wait

log = logging.getLogger(__name__)

IDLE_SECONDS = 5.0  # how long an idle session to a next hop is kept for reuse
FRESH_BYTES = 32 * 1024 * 1024  # copies just spooled kept in memory for their first attempt
REMOVAL_WAIT = 0.5  # delivered jobs left by the intake's disk threads are removed after this


@dataclass(frozen=True)
class Outcome:
    """One recipient's result from one attempt."""

    kind: str  # ok | temp | perm
    text: str
    status: str | None = None  # enhanced status code for DSNs


def outcome_for(code: int, message: str) -> Outcome:
    text = f"{code} {message}".strip()
    parts = message.split(" ", 1)
    status = parts[0] if parts and parts[0].count(".") == 2 else None
    if 200 <= code < 300:
        return Outcome("ok", text)
    if 400 <= code < 500:
        return Outcome("temp", text, status)
    return Outcome("perm", text, status or "5.0.0")


def _internal_error(exc: Exception) -> Outcome:
    return Outcome("temp", f"internal error: {exc.__class__.__name__}: {exc}", "4.3.0")


def _has_8bit(data: bytes) -> bool:
    return not data.isascii()


class Delivery:
    """A scheduler and N workers sharing the spool; all state lives in the spool."""

    def __init__(
        self, settings: Settings, spool: Spool, db: Database | None, resolver: Resolver | None
    ) -> None:
        self.settings = settings
        self.cfg = settings.delivery
        self.spool = spool
        self.db = db
        self.resolver = resolver
        self.hostname = settings.smtp.hostname
        self._heap: list[tuple[float, int, str]] = []
        self._jobs: dict[str, Job] = {}
        self._busy: set[str] = set()
        self._seq = itertools.count()
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._idle: dict[tuple[str, int], list[tuple[SmtpClient, float]]] = {}
        self._fresh: dict[str, bytes] = {}  # job id -> its spooled copy, until first attempt
        self._fresh_bytes = 0
        self._controls_due = False  # check_controls: read the control requests now
        self._remover: asyncio.Task | None = None
        self._tls = ssl.create_default_context()
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE  # opportunistic: encrypt, do not authenticate

    # --- scheduling --------------------------------------------------------

    def submit(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self._jobs[job.id] = job
            heapq.heappush(self._heap, (job.next_attempt, next(self._seq), job.id))
        self._wake.set()

    def submit_spooled(self, jobs: list[tuple[Job, bytes]]) -> None:
        """Jobs just written to the spool, with their bytes: the first attempt sends
        these instead of reading the file back (within FRESH_BYTES in all)."""
        for job, data in jobs:
            if self._fresh_bytes + len(data) <= FRESH_BYTES:
                self._fresh[job.id] = data
                self._fresh_bytes += len(data)
        self.submit(job for job, _ in jobs)

    def _data(self, job: Job) -> bytes:
        data = self._fresh.pop(job.id, None)
        if data is None:
            return self.spool.read(job.id)  # from the page cache: cheaper than a thread hop
        self._fresh_bytes -= len(data)
        return data

    async def start(self, jobs: Iterable[Job]) -> None:
        self.submit(jobs)
        self._tasks.append(asyncio.create_task(self._scheduler(), name="delivery-scheduler"))
        for i in range(self.cfg.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"delivery-{i}"))

    async def stop(self, grace: float = 10.0) -> None:
        """Let attempts in progress finish (up to `grace`), then cancel the rest.

        An attempt cut short keeps its job in the spool: it is retried after restart.
        """
        scheduler, workers = self._tasks[:1], self._tasks[1:]
        await cancel_and_wait(scheduler)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._busy and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await cancel_and_wait(workers)
        self._tasks.clear()
        if self._remover is not None:
            await cancel_and_wait([self._remover])
        await self._remove_finished()
        await self._close_idle()

    @property
    def pending_jobs(self) -> int:
        return len(self._jobs)

    def queue_snapshot(self, limit: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The queue's counts and its `limit` oldest jobs as the scheduler holds them
        (gateway.store.queue_view.snapshot), for the heartbeat's node report."""
        return queue_view.snapshot(self.spool, list(self._jobs.values()), limit, busy=self._busy)

    def oldest_received_at(self) -> float | None:
        """When the oldest job waiting was received (for the queue-age gauge)."""
        return min((job.received_at for job in self._jobs.values()), default=None)

    def check_controls(self) -> None:
        """Read the spool's control requests now, not at the next poll (a request
        from another node's console was just handed on)."""
        self._controls_due = True
        self._wake.set()

    async def _scheduler(self) -> None:
        next_control = 0.0
        while True:
            now = time.time()
            if now >= next_control or self._controls_due:  # `mailwarden queue hold|...`
                self._controls_due = False
                await self._apply_controls()
                next_control = now + self.cfg.poll_interval
            while self._heap and self._heap[0][0] <= now:
                at, _, job_id = heapq.heappop(self._heap)
                job = self._jobs.get(job_id)
                if job is None or job_id in self._busy or at != job.next_attempt:
                    continue  # gone, in progress, or rescheduled (flushed) since
                if job.meta.get("held"):
                    continue  # back in the heap when released
                self._busy.add(job_id)
                self._queue.put_nowait(job)
            delay = self._heap[0][0] - now if self._heap else self.cfg.poll_interval
            delay = min(delay, max(0.0, next_control - now))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: see gateway.app.heartbeat
                async with asyncio.timeout(max(0.01, delay)):
                    await self._wake.wait()

    # --- operator control (gateway.store.queue_control) -----------------------

    async def _apply_controls(self) -> None:
        try:
            requests = await asyncio.to_thread(control.pending, self.spool.root)
        except OSError as exc:
            log.warning("queue control: cannot read requests: %s", exc)
            return
        for request in requests:
            targets = [j for j in self._jobs.values() if request.matches(j.id, j.queue_id)]
            if request.op in ("hold", "delete") and any(j.id in self._busy for j in targets):
                continue  # an attempt is under way: apply once it is over
            if request.job is not None and not targets:
                message = f"{request.job}: no such job in the queue"
                await asyncio.to_thread(
                    control.answer, self.spool.root, request, False, message, []
                )
                continue
            message = await self._apply(request, targets)
            ids = [j.id for j in targets]
            log.info("queue control: %s by %s", message, request.by)
            await asyncio.to_thread(control.answer, self.spool.root, request, True, message, ids)

    async def _apply(self, request: control.Request, jobs: list[Job]) -> str:
        now = time.time()
        names = ", ".join(j.id for j in jobs) or "no job"
        if request.op == "hold":
            for job in jobs:
                job.meta["held"] = {"by": request.by, "at": request.at}
                await asyncio.to_thread(self.spool.update, job)
            return f"held {names}"
        if request.op == "delete":
            for job in jobs:
                self._jobs.pop(job.id, None)
                self._fresh_bytes -= len(self._fresh.pop(job.id, b""))
                await asyncio.to_thread(self.spool.remove, [job.id])
                await self._record_deleted(job, request)
            return f"deleted {names}"
        flushed = []
        for job in jobs:
            if request.op == "release":
                job.meta.pop("held", None)
            elif job.meta.get("held"):
                continue  # flush does not release
            job.next_attempt = now
            if request.op == "release":
                await asyncio.to_thread(self.spool.update, job)
            flushed.append(job)
        self.submit(flushed)
        verb = "released" if request.op == "release" else "flushed"
        return f"{verb} {', '.join(j.id for j in flushed) or 'no job'}"

    async def _record_deleted(self, job: Job, request: control.Request) -> None:
        if self.db is None or job.kind == "dsn":
            return
        rcpts = [r.rcpt for r in job.pending]
        note = f"deleted from the queue by {request.by} at {request.at}"
        try:
            await self.db.write(
                ledger.mark_recipients, job.queue_id, rcpts, "deleted", None, note, job.attempts
            )
        except Exception:
            log.exception("%s: could not record the deletion in the ledger", job.id)

    async def _worker(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self.attempt(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                # the attempt was counted and logged in `attempt`; whatever broke after
                # that, the job waits its backoff: never a hot loop
                log.exception("%s: delivery attempt %d went wrong", job.id, job.attempts)
                job.next_attempt = time.time() + self._backoff(job)
                self.submit([job])
            finally:
                self._busy.discard(job.id)

    def _backoff(self, job: Job) -> float:
        schedule = self.cfg.retry_schedule
        return schedule[min(max(job.attempts, 1) - 1, len(schedule) - 1)]

    # --- one attempt -------------------------------------------------------

    async def attempt(self, job: Job) -> None:
        """One attempt for every pending recipient. Any exception in it counts as a
        failed attempt (logged once, with the job id), so a job that cannot be sent
        for a reason nobody foresaw still ends in a bounce at the retry window."""
        pending = job.pending
        job.attempts += 1
        data = b""
        try:
            data = self._data(job)
            hosts, route_error = await self._route(job)
            if hosts:
                outcomes, remote = await self._send(hosts, job, data, [r.rcpt for r in pending])
            else:
                failed = route_error or Outcome("temp", "no route")
                outcomes, remote = {r.rcpt: failed for r in pending}, "-"
        except Exception as exc:
            log.exception("%s: delivery attempt %d failed unexpectedly", job.id, job.attempts)
            outcomes, remote = {r.rcpt: _internal_error(exc) for r in pending}, "-"
        now = time.time()
        expired = now - job.received_at > self.cfg.retry_window
        for r in pending:
            o = outcomes[r.rcpt]
            r.last_error = None if o.kind == "ok" else o.text
            if o.kind == "ok":
                r.status = RcptStatus.DELIVERED
            elif o.kind == "perm":
                r.status, r.dsn_status = RcptStatus.BOUNCED, o.status
            elif expired:
                r.status, r.dsn_status = RcptStatus.BOUNCED, "4.4.7"
                r.last_error = f"expired after {job.attempts} attempts: {o.text}"
        delivered = [r for r in pending if r.status == RcptStatus.DELIVERED]
        bounced = [r for r in pending if r.status == RcptStatus.BOUNCED]
        deferred = [r for r in pending if r.status == RcptStatus.PENDING]
        if bounced and job.mail_from and job.kind != "dsn":
            await self._send_dsn(job, bounced, data, remote)
        results = [
            (result, r, outcomes[r.rcpt].text if result != "bounced" else r.last_error)
            for result, group in (
                ("delivered", delivered),
                ("deferred", deferred),
                ("bounced", bounced),
            )
            for r in group
        ]
        await self._record(job, delivered, bounced, deferred, results, remote)
        if deferred:
            job.last_error = deferred[0].last_error
            job.next_attempt = now + self._backoff(job)
            await asyncio.to_thread(self.spool.update, job)
            self.submit([job])
        else:
            self._jobs.pop(job.id, None)
            self._remove(job.id)
        for result, r, reply in results:
            events.delivery(
                job.queue_id,
                job.id,
                r.rcpt,
                result,
                reply,
                remote,
                job.attempts,
                now - job.received_at,
                job.kind,
            )

    def _remove(self, job_id: str) -> None:
        """Take a finished job out of the spool, not on the loop (unlink waits for the
        journal behind concurrent fsyncs): the intake's disk threads remove it after
        their next spool write (`Spool.finish`); when mail stops coming, a thread hop
        after REMOVAL_WAIT does. A crash before the removal means the copy is sent
        again, as it would be a moment earlier."""
        self.spool.finish(job_id)
        if self._remover is None or self._remover.done():
            self._remover = asyncio.create_task(self._remove_left())

    async def _remove_left(self) -> None:
        await asyncio.sleep(REMOVAL_WAIT)
        await self._remove_finished()

    async def _remove_finished(self) -> None:
        while self.spool.finished:
            try:
                await asyncio.to_thread(self.spool.remove_finished)
            except OSError:
                log.exception("could not remove delivered jobs from the spool")
                return

    async def _record(
        self,
        job: Job,
        delivered: list[RcptState],
        bounced: list[RcptState],
        deferred: list,
        results: list[tuple[str, RcptState, str | None]],
        remote: str,
    ) -> None:
        if self.db is None or job.kind == "dsn":
            return
        now = datetime.now(UTC)
        done = RcptStatus.RELEASED if job.kind == "release" else RcptStatus.DELIVERED
        tried = [
            {
                "message_id": job.queue_id,
                "job_id": job.id,
                "kind": job.kind,
                "rcpt": r.rcpt,
                "attempt": job.attempts,
                "at": now,
                "result": result,
                "reply": (reply or "")[:2000] or None,
                "remote": remote[:255],
            }
            for result, r, reply in results
        ]
        marks = [
            (job.queue_id, rcpts, status, when, error, job.attempts)
            for status, group, when in (
                (done, delivered, now),
                (RcptStatus.BOUNCED, bounced, None),
                (RcptStatus.PENDING, deferred, None),
            )
            for error, rcpts in _by_error(group).items()
        ]
        try:  # one write (one hand-over to the database writer) for the attempt's rows
            await self.db.write(ledger.record_delivery, tried, marks)
        except Exception:
            log.exception("%s: could not record delivery in the ledger", job.id)

    async def _send_dsn(
        self, job: Job, bounced: list[RcptState], original: bytes, remote: str
    ) -> None:
        dsn_id = new_queue_id()
        dsn = Job(
            id=f"{dsn_id}.0",
            queue_id=dsn_id,
            mail_from="",
            rcpts=[RcptState(job.mail_from)],
            received_at=time.time(),
            kind="dsn",
            meta={"bounce_of": job.queue_id},
        )
        data = build_dsn(job, bounced, original, self.hostname, remote)
        await asyncio.to_thread(self.spool.write, [(dsn, data)])
        self.submit([dsn])

    async def _route(self, job: Job) -> tuple[list[tuple[str, int]], Outcome | None]:
        """Where a job goes: the next hop for our domains; bounces and outbound mail for
        other domains to [delivery] bounce_relay / [outbound] relay, else their MX."""
        next_hop = [parse_host_port(self.cfg.next_hop)]
        domain = domain_of(job.rcpts[0].rcpt)
        if self.settings.accepts(domain):
            return next_hop, None
        relay = self.cfg.bounce_relay if job.kind == "dsn" else self.settings.outbound.relay
        if relay:
            return [parse_host_port(relay)], None
        if self.resolver is None:
            return [], Outcome("temp", "no resolver for MX lookups")
        try:
            mx = await self.resolver.mx(domain)
        except NoRecord:
            mx = [(0, domain)]  # RFC 5321 5.1: no MX, use the address records
        except DnsError as exc:
            return [], Outcome("temp", f"MX lookup for {domain} failed: {exc}")
        if mx == [(0, "")] or mx == [(0, ".")]:
            return [], Outcome("perm", f"{domain} accepts no mail (null MX)", "5.1.10")
        return await self._addresses([host for _, host in mx], domain)

    async def _addresses(
        self, hosts: list[str], domain: str
    ) -> tuple[list[tuple[str, int]], Outcome | None]:
        """The MX hosts' addresses, in MX order, looked up through our DNS adapter (its
        servers and cache), not the system's resolver."""
        assert self.resolver is not None
        port = self.settings.outbound.mx_port
        found: list[tuple[str, int]] = []
        errors = []
        for host in hosts:
            try:
                ipaddress.ip_address(host)
                found.append((host, port))
                continue
            except ValueError:
                pass
            for rdtype in ("A", "AAAA"):
                try:
                    found += [(ip, port) for ip in await self.resolver.addresses(host, rdtype)]
                except NoRecord:
                    continue
                except DnsError as exc:
                    errors.append(f"{host} {rdtype}: {exc}")
        if found:
            return found, None
        why = "; ".join(errors) or "no address records"
        return [], Outcome("temp", f"no address for the MX of {domain}: {why}")

    async def _send(
        self, hosts: list[tuple[str, int]], job: Job, data: bytes, rcpts: list[str]
    ) -> tuple[dict[str, Outcome], str]:
        last = Outcome("temp", "no host tried")
        for host, port in hosts:
            remote = f"{host}:{port}" if port != 25 else host
            next_hop = (host, port) == parse_host_port(self.cfg.next_hop)
            try:
                outcomes = await self._transaction(host, port, job, data, rcpts)
            except (OSError, SMTPException, TimeoutError) as exc:
                last = Outcome("temp", f"{remote}: {exc.__class__.__name__}: {exc}")
                log.debug("%s: %s", job.id, last.text)
                if next_hop:
                    OUTAGES.failed("next hop", f"{host}:{port}", f"{exc.__class__.__name__}: {exc}")
                continue
            except Exception as exc:  # a bug, or input nobody foresaw: the attempt failed
                log.exception(
                    "%s: delivery attempt %d failed unexpectedly (%s)", job.id, job.attempts, remote
                )
                return {r: _internal_error(exc) for r in rcpts}, remote
            if next_hop:
                OUTAGES.ok("next hop", f"{host}:{port}")
            return outcomes, remote
        return {r: last for r in rcpts}, "-"

    async def _connect(self, host: str, port: int) -> SmtpClient:
        """A session to host:port: a cached idle one if still fresh, else a new one."""
        idle = self._idle.get((host, port), [])
        while idle:
            client, since = idle.pop()
            if time.monotonic() - since < IDLE_SECONDS and client.is_connected:
                return client
            client.close()
        client = await SmtpClient.open(
            host, port, self.hostname, self.cfg.connect_timeout, self.cfg.command_timeout
        )
        if client.supports("starttls"):
            try:
                await client.starttls(self._tls, host)
                await client.ehlo(self.hostname)
            except SMTPException as exc:
                log.info("STARTTLS to %s failed (%s); going on in clear", host, exc)
        return client

    def _keep(self, host: str, port: int, client: SmtpClient) -> None:
        """Cache a session after a complete transaction, for the next job (as Postfix does)."""
        idle = self._idle.setdefault((host, port), [])
        if len(idle) < self.cfg.workers:
            idle.append((client, time.monotonic()))
        else:
            client.close()

    async def _close_idle(self) -> None:
        for idle in self._idle.values():
            for client, _ in idle:
                await self._quit(client)
        self._idle.clear()

    @staticmethod
    async def _quit(client: SmtpClient) -> None:
        try:
            await asyncio.wait_for(client.quit(), 2)
        except (OSError, SMTPException, TimeoutError):
            client.close()

    async def _transaction(
        self, host: str, port: int, job: Job, data: bytes, rcpts: list[str]
    ) -> dict[str, Outcome]:
        client = await self._connect(host, port)
        try:
            outcomes = await self._mail_transaction(client, host, job, data, rcpts)
        except BaseException:
            client.close()
            raise
        if any(o.kind != "temp" for o in outcomes.values()):
            self._keep(host, port, client)
        else:
            # every recipient deferred: the server is busy or changing its mind, and a
            # cached session would keep talking to a process that still has the old
            # answer (Postfix's smtpd re-reads its maps only in a new session)
            await self._quit(client)
        return outcomes

    async def _mail_transaction(
        self, client: SmtpClient, host: str, job: Job, data: bytes, rcpts: list[str]
    ) -> dict[str, Outcome]:
        options, encoding = [], "ascii"
        if _has_8bit(data) and client.supports("8bitmime"):
            options.append("BODY=8BITMIME")
        if job.smtputf8:
            if not client.supports("smtputf8"):
                o = Outcome("perm", f"{host} does not support SMTPUTF8", "5.6.7")
                return {r: o for r in rcpts}
            options.append("SMTPUTF8")
            encoding = "utf-8"
        mail, replies, final = await client.transaction(
            job.mail_from, options, rcpts, data, encoding
        )
        if mail.code != 250:
            o = outcome_for(mail.code, mail.message)
            return {r: o for r in rcpts}
        outcomes: dict[str, Outcome] = {}
        taken = []
        for rcpt, reply in zip(rcpts, replies, strict=True):
            if accepted(reply):
                taken.append(rcpt)
            else:
                outcomes[rcpt] = outcome_for(reply.code, reply.message)
        if taken and final is not None:
            o = outcome_for(final.code, final.message)
            outcomes.update({r: o for r in taken})
        return outcomes


def _by_error(group: list[RcptState]) -> dict[str | None, list[str]]:
    out: dict[str | None, list[str]] = {}
    for r in group:
        out.setdefault(r.last_error, []).append(r.rcpt)
    return out
