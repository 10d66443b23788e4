"""The composition root: builds the gateway's parts from settings and runs them.

`build_pipeline` (gateway/pipeline/assemble.py) is shared with `mailwarden scan`,
`rules test` and the console's dry run, so all run the same chain.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filters.auth import forged_results_dropper
from gateway.app import heartbeat, housekeeping, queue_requests
from gateway.app.exporter import MetricsEndpoint
from gateway.app.report_addresses import ReportAddresses
from gateway.config import ConfigError, Settings, load_settings, node_name
from gateway.delivery.outbound import Delivery
from gateway.domain_policy import PolicyBook
from gateway.mail.render import break_long_lines, fold
from gateway.monitor import logsetup, metrics
from gateway.pipeline.assemble import build_pipeline, build_ports
from gateway.pipeline.chain import build_session_checks
from gateway.pipeline.rules_db import RulesFollower, SettingsChecker
from gateway.smtp.handler import GatewayHandler
from gateway.smtp.intake import Intake
from gateway.smtp.outbound_guard import OutboundGuard
from gateway.smtp.server import SUBMISSION, SUBMISSION_TLS, SmtpServer
from gateway.smtp.submission import SubmissionHandler
from gateway.store import ledger, passwords, quarantine
from gateway.store.av_policy_live import PolicyCache
from gateway.store.db import Database
from gateway.store.spool import Job, RcptState, Spool
from gateway.store.spool_layout import orphan_dirs, spool_dir
from gateway.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RELEASE_POLL_SECONDS = 2.0
QUEUE_GAUGE_SECONDS = 2.0


class Gateway:
    """SMTP in, pipeline, spool, delivery and quarantine releases, in one process."""

    def __init__(self, settings: Settings, worker: tuple[int, int] = (0, 1)) -> None:
        self.settings = settings
        self.worker = worker
        self.node = node_name(settings, worker)
        self.address: tuple[str, int] | None = None
        self._release_task: asyncio.Task | None = None
        self._watch_tasks: list[asyncio.Task] = []
        self.av_policies: PolicyCache | None = None  # with [clamav]
        self.metrics: MetricsEndpoint | None = None
        self.metrics_address: tuple[str, int] | None = None
        self.web: Any = None  # the console's uvicorn server, with [web] listen
        self._web_task: asyncio.Task | None = None
        self._heartbeat: asyncio.Task | None = None
        self.submission: list[SmtpServer] = []  # with [outbound] submission_listen
        self.guard: OutboundGuard | None = None  # with [outbound]: trusted clients, accounts
        self.submission_addresses: list[tuple[str, int]] = []

    async def start(self) -> None:
        s = self.settings
        self.db = await asyncio.to_thread(Database, s.store.url)
        index, count = self.worker
        self.spool = Spool(spool_dir(s.spool.path, index, count))
        for orphan in orphan_dirs(s.spool.path, index, count):
            adopted = await asyncio.to_thread(self.spool.adopt, Spool(orphan))
            if adopted:
                log.warning("adopted %d job(s) from %s", adopted, orphan)
        self.ports = build_ports(s, self.db)
        from gateway.pipeline.policy_files import RulesWatcher

        self.rules = RulesWatcher(s)
        await asyncio.to_thread(self.rules.scan)
        if s.clamav is not None:  # read once here, then followed (gateway.store.av_policy_live)
            self.av_policies = PolicyCache(
                self.db, self.ports.redis, s.redis.prefix, s.clamav.policy_refresh
            )
            await self.av_policies.reload()
        self.pipeline = build_pipeline(
            s,
            self.ports,
            self.rules.book,
            av_policies=self.av_policies.policies if self.av_policies else None,
        )
        self.rules.on_change = self._policy_changed
        self.rules_db = RulesFollower(s, self.db, self.rules.set_db_policies, self.ports.redis)
        await self.rules_db.reload(force=True)
        await self.ports.lists.reload(force=True)
        self._watch_tasks = [
            asyncio.create_task(self.rules.run(), name="rules-reload"),
            asyncio.create_task(self.rules_db.run(), name="rules-db"),
            asyncio.create_task(self.ports.lists.run(), name="lists-sync"),
            asyncio.create_task(housekeeping.run(self.db.engine, s), name="housekeeping"),
        ]
        if self.av_policies is not None:
            self._watch_tasks.append(
                asyncio.create_task(self.av_policies.run(), name="av-policies-follow")
            )
        self.delivery = Delivery(s, self.spool, self.db, self.ports.dns)
        guard = None
        out = s.outbound
        if out.trusted_networks or out.submission_listen or out.submission_tls_listen:
            guard = self.guard = OutboundGuard(s, self.db, self.ports.redis, self.node)
            self._watch_tasks.append(asyncio.create_task(guard.run(), name="accounts-follow"))
        self.intake = Intake(
            self.pipeline,
            self.spool,
            self.db,
            s.smtp.hostname,
            self.node,
            on_spooled=self.delivery.submit_spooled,
            keep_attachments=bool(s.clamav and s.clamav.attachment_retention_days > 0),
            drop_field=forged_results_dropper(s.smtp.hostname),
            report_addresses=ReportAddresses(s, self.db, lambda: self.pipeline.book),
            mime_limits=(s.smtp.max_mime_depth, s.smtp.max_mime_parts),
            outbound_guard=guard,
        )
        jobs = await asyncio.to_thread(self.spool.recover)
        await self._restore_ledger(jobs)
        await self.delivery.start(jobs)
        checks = build_session_checks(s, self.ports)
        self.smtp = SmtpServer(s, GatewayHandler(s, self.intake, checks, self.ports.dns, guard))
        self.address = await self.smtp.start()
        if guard is not None and (out.submission_listen or out.submission_tls_listen):
            await asyncio.to_thread(passwords.warm)  # logins are checked from now on
        for kind, listen in ((SUBMISSION, out.submission_listen),
                             (SUBMISSION_TLS, out.submission_tls_listen)):  # fmt: skip
            if listen is None or guard is None:
                continue
            handler = SubmissionHandler(s, self.intake, guard, self.ports.dns)
            server = SmtpServer(s, handler, kind, listen)
            self.submission_addresses.append(await server.start())
            self.submission.append(server)
        self._heartbeat = asyncio.create_task(  # beats only while mail is accepted
            heartbeat.run(
                self.db,
                self.node,
                s,
                self.ports.clamd,
                self.ports.redis,
                queue=self.delivery.queue_snapshot,
            ),
            name="heartbeat",
        )
        self._release_task = asyncio.create_task(self._releases(), name="quarantine-releases")
        self._watch_tasks.append(asyncio.create_task(self._queue_gauges(), name="queue-gauges"))
        self._watch_tasks.append(  # queue actions asked on another node's console
            asyncio.create_task(
                queue_requests.run(
                    self.db,
                    self.node,
                    self.spool.root,
                    self.ports.redis,
                    s.redis.prefix,
                    s.delivery.request_refresh,
                    handed=self.delivery.check_controls,
                ),
                name="queue-requests",
            )
        )
        if s.metrics.listen and self.worker[1] == 1:  # several workers: the supervisor serves
            self.metrics = MetricsEndpoint(s)
            self.metrics_address = await asyncio.to_thread(self.metrics.start)
        if s.web.listen and self.worker[0] == 0:  # one console per node
            from gateway.web.server import build_server

            self.web = build_server(s, chain=self.pipeline.chain)
            self._web_task = asyncio.create_task(self.web.serve(), name="console")
        log.info("mailwarden ready on %s:%s, %d job(s) in the spool", *self.address, len(jobs))

    async def _queue_gauges(self) -> None:
        """The spool's size and oldest job, for the metrics, every QUEUE_GAUGE_SECONDS."""
        while True:
            oldest = self.delivery.oldest_received_at()
            age = 0.0 if oldest is None else max(0.0, time.time() - oldest)
            metrics.observe_queue(self.delivery.pending_jobs, age)
            await asyncio.sleep(QUEUE_GAUGE_SECONDS)

    async def stop(self) -> None:
        grace = self.settings.smtp.shutdown_grace
        log.info("stopping: no new connections; sessions in progress get %.0fs", grace)
        # no beat once we stop accepting; it must not delay the stop
        beat = asyncio.ensure_future(cancel_and_wait([self._heartbeat]))
        await asyncio.gather(*(server.stop(grace) for server in (self.smtp, *self.submission)))
        await beat
        await cancel_and_wait([self._release_task])
        if self.web is not None and self._web_task is not None:
            self.web.should_exit = True
            await asyncio.gather(self._web_task, return_exceptions=True)
        await self.delivery.stop()
        await cancel_and_wait(self._watch_tasks)
        if self.ports.redis is not None:
            await self.ports.redis.aclose()
        if self.ports.clamd is not None:
            await asyncio.to_thread(self.ports.clamd.close)
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.stop)
        await asyncio.to_thread(self.db.close)
        log.info("stopped")

    async def reload(self, config: Path | None) -> bool:
        """SIGHUP: read the config file again and reload what can change at run time
        (lists, rules and thresholds, logging, accepted domains, [outbound]) without
        touching sessions: a mail whose DATA ends after this is judged by the new rules.
        A broken file changes nothing (logged with every problem). Listening addresses,
        spool, database and pool sizes stay until a restart."""
        new = self.settings
        if config is not None:
            try:
                new = await asyncio.to_thread(load_settings, config)
            except ConfigError as exc:
                log.error("reload (SIGHUP) refused, nothing changed: %s", exc)
                return False
        if new.log.format != self.settings.log.format:
            logsetup.configure(
                new.log.format,
                logging.getLogger().level,
                worker=self.worker[0] if self.worker[1] > 1 else None,
            )
        self._reconfigure_smtp(self.settings, new)
        self.settings = new
        await asyncio.to_thread(self.rules.reset, new)
        self.rules_db.settings = new
        self.rules_db.check = SettingsChecker(new)
        await self.rules_db.reload(force=True)
        await self.ports.lists.reload(force=True)
        if self.av_policies is not None:
            await self.av_policies.reload()
        log.info(
            "reloaded (SIGHUP): lists, antivirus policies, rules, thresholds, logging, domains "
            "and [outbound] from %s",
            config,
        )
        return True

    def _reconfigure_smtp(self, old: Settings, new: Settings) -> None:
        """What each SMTP command and each delivery reads: accepted domains, recipient
        limits, [outbound] trust, limits and relay. Taking a network out of
        trusted_networks stops its relaying at its next RCPT."""
        for server in (self.smtp, *self.submission):
            server.handler.reconfigure(new)
        self.delivery.settings = new
        if self.guard is not None:
            self.guard.reconfigure(new)
        elif new.outbound.trusted_networks:
            log.warning("reload (SIGHUP): [outbound] was off at start: restart to turn it on")
        fixed = {
            "[smtp] listen": (old.smtp.listen, new.smtp.listen),
            "[outbound] submission_listen": (
                old.outbound.submission_listen,
                new.outbound.submission_listen,
            ),
            "[outbound] submission_tls_listen": (
                old.outbound.submission_tls_listen,
                new.outbound.submission_tls_listen,
            ),
            "[spool] path": (old.spool.path, new.spool.path),
            "[store] url": (old.store.url, new.store.url),
            "[delivery] next_hop": (old.delivery.next_hop, new.delivery.next_hop),
        }
        changed = [key for key, (before, after) in fixed.items() if before != after]
        if changed:
            log.warning("reload (SIGHUP): %s changed: a restart applies it", ", ".join(changed))

    def _policy_changed(self, book: PolicyBook) -> None:
        """A rule file changed (called from the reload thread): swap the book atomically."""
        self.pipeline.book = book

    async def _restore_ledger(self, jobs: list[Job]) -> None:
        """Ledger rows of messages spooled just before a crash (they ride in the job)."""
        for job in jobs:
            rows = job.meta.get("ledger")
            if not rows or await self.db.run(ledger.has_message, job.queue_id):
                continue

            await self.db.write(ledger.record, rows["message"], rows["recipients"])
            log.warning("%s: ledger rows restored from the spool after a crash", job.queue_id)

    async def _releases(self) -> None:
        """Deliver quarantined items that staff asked to release (from any node)."""
        while True:
            try:
                for item in await self.db.run(quarantine.release_requests):
                    await self._release(item)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("quarantine release poll failed")
            await asyncio.sleep(RELEASE_POLL_SECONDS)

    async def _release(self, item: dict) -> None:
        raw = await self.db.run(quarantine.original, item["id"])
        if raw is None:
            log.error("quarantine item %s has no stored copy: not released", item["id"])
            return
        sender = await self.db.run(_sender_of, item["message_id"])
        when = datetime.now(UTC)
        note = f"{item['id']} by {item.get('decided_by') or 'staff'} at {when.isoformat()}"
        data = break_long_lines(fold("X-Mailwarden-Released", note) + raw)
        job = Job(
            id=f"{item['id']}.r",
            queue_id=item["message_id"],
            mail_from=sender or "",
            rcpts=[RcptState(r) for r in item["rcpts"]],
            received_at=time.time(),
            kind="release",
        )
        await asyncio.to_thread(self.spool.write, [(job, data)])
        if not await self.db.run(quarantine.claim_release, item["id"]):
            await asyncio.to_thread(self.spool.remove, [job.id])  # another node took it
            return
        self.delivery.submit([job])
        log.info("%s: released to %s", item["id"], ", ".join(item["rcpts"]))


def _sender_of(engine, message_id: str) -> str | None:
    from sqlalchemy import select

    with engine.connect() as conn:
        row = conn.execute(
            select(ledger.messages.c.mail_from).where(ledger.messages.c.id == message_id)
        ).first()
    return None if row is None else row.mail_from


async def serve(
    settings: Settings, worker: tuple[int, int] = (0, 1), ready=None, config: Path | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully; SIGHUP reloads from `config`.
    `worker` is (index, count) under gateway.app.workers' supervisor, which waits on
    `ready`."""
    gateway = Gateway(settings, worker)
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task] = set()

    def hangup() -> None:
        task = asyncio.create_task(gateway.reload(config), name="sighup-reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    if ready is not None:
        ready.set()
    else:
        if gateway.metrics_address is not None:
            host, port = gateway.metrics_address
            print(f"mailwarden metrics on http://{host}:{port}/metrics", flush=True)
        for host, port in gateway.submission_addresses:
            print(f"mailwarden submission port on {host}:{port}", flush=True)
        host, port = gateway.address or ("?", 0)
        print(f"mailwarden listening on {host}:{port}", flush=True)
    await stop.wait()
    await gateway.stop()
