"""The gateway's Prometheus metrics, moved by the events in gateway.monitor.events.

With `[smtp] processes` > 1 the supervisor points PROMETHEUS_MULTIPROC_DIR at a
directory of its own run before it starts the workers, so every metric here is
kept in that directory's files and one endpoint adds them up (gateway/app/exporter.py).
Gauges say how they combine across processes (`multiprocess_mode`): queue sizes
add up, ages take the maximum. Labels stay bounded: domains are the accepted ones
(others are refused at RCPT), filters and actions are fixed sets.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "mailwarden_messages",
    "Messages whose DATA was judged, by what the client was told",
    ["outcome"],  # accepted | rejected | tempfailed
)
RECIPIENTS = Counter(
    "mailwarden_recipients",
    "Recipient decisions, by recipient domain and action",
    ["domain", "action"],
)
VIRUS_MESSAGES = Counter("mailwarden_virus_messages", "Messages in which a virus was found")
FILTER_SECONDS = Histogram(
    "mailwarden_filter_seconds",
    "Time per filter lookup, for evaluation and for the whole pipeline, per message",
    ["filter"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
)
DELIVERIES = Counter(
    "mailwarden_deliveries",
    "Per-recipient outcomes of delivery attempts",
    ["kind", "result"],  # kind: message | release | dsn; result: delivered | deferred | bounced
)
DELIVERY_DELAY = Histogram(
    "mailwarden_delivery_delay_seconds",
    "From the end of DATA to the next hop's 250, per delivered recipient (the SLA delay)",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
REFUSALS = Counter(
    "mailwarden_refusals",
    "Senders and recipients refused during the SMTP dialogue",
    ["stage", "source"],  # stage: mail | rcpt; source: relay or the session check
)
QUEUE_JOBS = Gauge(
    "mailwarden_queue_jobs", "Jobs waiting in the spool for delivery", multiprocess_mode="livesum"
)
QUEUE_OLDEST = Gauge(
    "mailwarden_queue_oldest_age_seconds",
    "Age of the oldest job in the spool (0 when empty)",
    multiprocess_mode="livemax",
)
MODEL_INFO = Gauge(
    "mailwarden_classifier_model_info",
    "The classifier model that scored the latest message (1 for the version in use)",
    ["version"],
    multiprocess_mode="livemax",
)

_model_version: list[str | None] = [None]
# (metric, label values) -> the child: `labels()` checks and converts its arguments
# and takes a lock on every call, several times a message
_CHILDREN: dict[tuple[Any, tuple[str, ...]], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    child = _CHILDREN.get((metric, values))
    if child is None:
        child = _CHILDREN[(metric, values)] = metric.labels(*values)
    return child


def observe_verdict(event: dict[str, Any]) -> None:
    _child(MESSAGES, event["outcome"]).inc()
    for r in event["recipients"]:
        _child(RECIPIENTS, r["domain"], r["action"]).inc()
    if event["viruses"]:
        VIRUS_MESSAGES.inc()
    for name, ms in event["timings_ms"].items():
        _child(FILTER_SECONDS, name).observe(ms / 1000)
    version = event.get("classifier_model")
    if version and version != _model_version[0]:
        if _model_version[0] is not None:
            MODEL_INFO.labels(_model_version[0]).set(0)
        MODEL_INFO.labels(version).set(1)
        _model_version[0] = version


def observe_delivery(event: dict[str, Any]) -> None:
    _child(DELIVERIES, event["kind"], event["result"]).inc()
    if event["kind"] == "message" and event["result"] == "delivered":
        DELIVERY_DELAY.observe(event["delay_s"])


def observe_refusal(event: dict[str, Any]) -> None:
    _child(REFUSALS, event["stage"], event["source"]).inc()


def observe_queue(jobs: int, oldest_age_s: float) -> None:
    QUEUE_JOBS.set(jobs)
    QUEUE_OLDEST.set(oldest_age_s)
