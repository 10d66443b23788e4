"""The /metrics endpoint on `[metrics] listen`, and the health it probes at scrape time.

Counters and histograms are moved by the gateway's events (gateway.monitor);
what only a probe can tell (is clamd, Redis, the database, the next hop up; how
old are the signatures; how much feedback has arrived) is asked when Prometheus
scrapes, with short timeouts and a few seconds' cache, so a dead component costs
a scrape at most PROBE_TIMEOUT, never a stuck endpoint.

One process: the default registry of that process. `[smtp] processes` > 1: the
supervisor serves a registry that adds up the workers' files in the run's own
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from gateway.adapters.clamd import parse_version
from gateway.config import Settings, parse_host_port
from gateway.store import ledger
from gateway.store.db import make_engine

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0
CACHE_SECONDS = 5.0


def probe_next_hop(address: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """The next hop answers with a 220 greeting (then we say QUIT)."""
    with socket.create_connection(parse_host_port(address), timeout=timeout) as sock:
        sock.settimeout(timeout)
        greeting = sock.recv(512)
        if greeting.startswith(b"220"):
            sock.sendall(b"QUIT\r\n")
        return greeting.startswith(b"220")


def clamd_version(settings: Settings, timeout: float = PROBE_TIMEOUT) -> str:
    """clamd's VERSION reply over a connection of our own."""
    av = settings.clamav
    assert av is not None
    if av.socket is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        target: Any = str(av.socket)
    else:
        assert av.address is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        target = parse_host_port(av.address)
    with sock:
        sock.connect(target)
        sock.sendall(b"zVERSION\0")
        reply = b""
        while not reply.endswith(b"\0"):
            chunk = sock.recv(512)
            if not chunk:
                break
            reply += chunk
    return reply.decode(errors="replace").strip("\0\n ")


class HealthCollector(Collector):
    """Component health, signature age and feedback counts, probed at scrape time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine = make_engine(settings.store.url)
        self._redis: Any = None
        if settings.redis.url:
            import redis

            self._redis = redis.Redis.from_url(
                settings.redis.url,
                socket_timeout=PROBE_TIMEOUT,
                socket_connect_timeout=PROBE_TIMEOUT,
            )
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="probe")

    def describe(self) -> list[Metric]:
        return []  # no probing when the registry looks at what it will collect

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > CACHE_SECONDS:
                self._cached = (now, self._probe())
            yield from self._cached[1]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._engine.dispose()

    def _probe(self) -> list[Metric]:
        checks = {"database": self._database, "next_hop": self._next_hop}
        if self._redis is not None:
            checks["redis"] = self._redis.ping
        if self.settings.clamav is not None:
            checks["clamd"] = self._clamd
        futures = {name: self._pool.submit(fn) for name, fn in checks.items()}
        up = GaugeMetricFamily(
            "mailwarden_component_up",
            "1 when the component answered the last probe (clamd, redis, database, next_hop)",
            labels=["component"],
        )
        results: dict[str, Any] = {}
        for name, future in futures.items():
            try:
                results[name] = future.result(PROBE_TIMEOUT * 2)
                ok = results[name] is not False
            except Exception as exc:  # noqa: BLE001 - a failed probe is the answer
                log.debug("metrics probe %s failed: %s", name, exc)
                ok = False
            up.add_metric([name], 1.0 if ok else 0.0)
        out: list[Metric] = [up]
        version = results.get("clamd")
        if isinstance(version, str):
            out += _signature_metrics(version)
        feedback = results.get("database")
        if isinstance(feedback, list):
            counts = CounterMetricFamily(
                "mailwarden_feedback",
                "Feedback events in the ledger (missed spam, missed virus, false positive...)",
                labels=["kind", "source"],
            )
            for kind, source, count in feedback:
                counts.add_metric([kind, source], float(count))
            out.append(counts)
        return out

    def _database(self) -> list[tuple[str, str, int]]:
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            fb = ledger.feedback
            rows = conn.execute(
                select(fb.c.kind, fb.c.source, func.count()).group_by(fb.c.kind, fb.c.source)
            ).all()
        return [(r[0], r[1], int(r[2])) for r in rows]

    def _next_hop(self) -> bool:
        return probe_next_hop(self.settings.delivery.next_hop)

    def _clamd(self) -> str:
        return clamd_version(self.settings)


def _signature_metrics(reply: str) -> list[Metric]:
    try:
        version = parse_version(reply)
    except ValueError:
        return []
    info = GaugeMetricFamily(
        "mailwarden_clamav_signatures_info",
        "clamd's engine and signature database version (value 1)",
        labels=["engine", "db_version"],
    )
    info.add_metric([version.engine, str(version.db_version or "")], 1.0)
    out: list[Metric] = [info]
    if version.db_date is not None:
        age = GaugeMetricFamily(
            "mailwarden_clamav_signature_age_seconds",
            "Age of clamd's signature database (the agreements want it under a week)",
        )
        age.add_metric([], (datetime.now(UTC) - version.db_date).total_seconds())
        out.append(age)
    return out


class MetricsEndpoint:
    """An HTTP server for /metrics; `multiprocess_dir` set: the workers' sum."""

    def __init__(self, settings: Settings, multiprocess_dir: Path | None = None) -> None:
        assert settings.metrics.listen is not None
        self.listen = settings.metrics.listen
        if multiprocess_dir is not None:
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=str(multiprocess_dir))
        else:
            self.registry = REGISTRY
        self.health = HealthCollector(settings)
        self.registry.register(self.health)
        self._server: Any = None

    def start(self) -> tuple[str, int]:
        host, port = parse_host_port(self.listen, any_port=True)
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        bound = self._server.server_address
        log.info("metrics on http://%s:%s/metrics", bound[0], bound[1])
        return bound[0], bound[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.registry.unregister(self.health)
        self.health.close()
