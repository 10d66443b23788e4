"""One log event per message verdict, per delivery outcome and per refusal at MAIL/RCPT.

Each event is a dict that the JSON formatter prints as one line (`[log] format =
"json"`), and a one-line summary for the text format; both name enough (client,
envelope, per-recipient action, score, symbols, reasons, reply) that an operator
can answer "why was this mail rejected" from the log alone. Emitting an event also
moves its Prometheus counters, so the log and the metrics never disagree.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.model import Reply
from gateway.monitor import metrics

if TYPE_CHECKING:
    from gateway.model import Verdict

EVENTS = logging.getLogger("mailwarden.events")


def verdict_event(verdict: Verdict, outcome: str, reply: Reply | str) -> dict[str, Any]:
    """The verdict of one message: what was decided for whom, and why."""
    ctx = verdict.ctx
    env = ctx.envelope
    viruses = sorted({v for d in verdict.decisions if d.virus for v in d.virus.viruses})
    message_ids = ctx.header("Message-ID")
    return {
        "event": "verdict",
        "queue_id": ctx.queue_id,
        "outcome": outcome,
        "reply": str(reply),
        "client": {
            "ip": env.client_ip,
            "hostname": env.client_hostname,
            "helo": env.helo,
            "tls": env.tls,
        },
        "mail_from": env.mail_from,
        "rcpts": list(env.rcpt_tos),
        "message_id": message_ids[0].strip() if message_ids else None,
        "size": len(ctx.raw),
        "viruses": viruses,
        "classifier_model": _fact(verdict, "classifier", "model_version"),
        "av_db": _fact(verdict, "antivirus", "db_version"),
        "recipients": [
            {
                "rcpt": d.rcpt,
                "domain": d.rcpt.rpartition("@")[2].lower(),
                "action": str(d.action),
                "score": round(d.score, 3),
                "spam": d.spam,
                "symbols": {s.name: round(s.score, 3) for s in d.symbols},
                "reasons": list(d.reasons),
                **({"reply": str(d.reply)} if d.reply else {}),
                **({"viruses": list(d.virus.viruses)} if d.virus and d.virus.viruses else {}),
            }
            for d in verdict.decisions
        ],
        "timings_ms": dict(verdict.timings_ms),
    }


def _fact(verdict: Verdict, filter_name: str, key: str) -> str | None:
    value = verdict.facts(filter_name).get(key)
    return None if value is None else str(value)


def verdict(verdict: Verdict, outcome: str, reply: Reply | str) -> None:
    """Log and count one message verdict (accepted, rejected or tempfailed)."""
    event = verdict_event(verdict, outcome, reply)
    metrics.observe_verdict(event)
    if not EVENTS.isEnabledFor(logging.INFO):
        return
    EVENTS.info("%s", _VerdictText(event), extra={"event": event})


class _VerdictText:
    """The text-format line of a verdict, made only when a text line is written (in
    the log's writer thread): the JSON format never needs it."""

    __slots__ = ("event",)

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event

    def __str__(self) -> str:
        e = self.event
        per_rcpt = ", ".join(
            f"{r['rcpt']}={r['action']} ({r['score']:g}"
            + (f"; {'; '.join(r['reasons'])}" if r["reasons"] else "")
            + ")"
            for r in e["recipients"]
        )
        return (
            f"{e['queue_id']}: {e['outcome']} from {e['client']['ip']} <{e['mail_from']}>: "
            f"{per_rcpt}: {e['reply']}"
        )


def delivery(
    queue_id: str,
    job_id: str,
    rcpt: str,
    result: str,
    reply: str | None,
    remote: str,
    attempt: int,
    delay_s: float,
    kind: str = "message",
) -> None:
    """One recipient's outcome of one delivery attempt: delivered, deferred or bounced."""
    event = {
        "event": "delivery",
        "queue_id": queue_id,
        "job": job_id,
        "kind": kind,
        "rcpt": rcpt,
        "result": result,
        "reply": reply,
        "remote": remote,
        "attempt": attempt,
        "delay_s": round(delay_s, 3),
    }
    metrics.observe_delivery(event)
    if EVENTS.isEnabledFor(logging.INFO):
        EVENTS.info(
            "%s: %s <%s> via %s after %.1fs (attempt %d)%s",
            job_id,
            result,
            rcpt,
            remote,
            delay_s,
            attempt,
            f": {reply}" if reply else "",
            extra={"event": event},
        )


def refusal(row: dict[str, Any]) -> None:
    """A sender or recipient refused during the dialogue (a ledger `refusals` row)."""
    event = {
        "event": "refusal",
        "stage": row["stage"],
        "source": row["source"],
        "reply": row["reply"],
        "client": {
            "ip": row["client_ip"],
            "hostname": row.get("client_hostname"),
            "helo": row.get("helo"),
        },
        "mail_from": row.get("mail_from"),
        "rcpt": row.get("rcpt"),
    }
    metrics.observe_refusal(event)
    if EVENTS.isEnabledFor(logging.INFO):
        EVENTS.info(
            "refused at %s from %s <%s>%s by %s: %s",
            row["stage"].upper(),
            row["client_ip"],
            row.get("mail_from") or "",
            f" to <{row['rcpt']}>" if row.get("rcpt") else "",
            row["source"],
            row["reply"],
            extra={"event": event},
        )
