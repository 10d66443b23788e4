"""An offline evaluation written to a ledger, so the monthly report can grade it.

`mailwarden eval --report` pushes a labelled corpus through the pipeline; each
verdict is recorded here as the gateway would record it (message and recipient
rows), and the corpus label as feedback (source "eval"), so the report's rates,
intervals and statuses are exactly those the gateway would be held to. There is
no next hop offline: mail the verdict lets through is recorded as delivered after
the time the pipeline took, which makes the delay figures the gateway's own share.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from gateway.model import DELIVERABLE, Action, RcptStatus, Verdict
from gateway.store import ledger
from gateway.store.feedback import add_feedback

NODE = "eval"
BATCH = 500
_STATUS = {
    Action.QUARANTINE: RcptStatus.QUARANTINED,
    Action.REJECT: RcptStatus.REJECTED,
    Action.TEMPFAIL: RcptStatus.TEMPFAILED,
}


class ScratchLedger:
    """Collects verdicts with their true label and writes them in batches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: list[tuple[dict[str, Any], list[dict[str, Any]], str]] = []
        self.written = 0

    def add(self, label: str, verdict: Verdict, seconds: float) -> None:
        """One judged message; `label` is what it really was (spam, ham or virus)."""
        decided = verdict.ctx.received_at + timedelta(seconds=seconds)
        refused = all(d.action == Action.REJECT for d in verdict.decisions)
        outcome = "rejected" if refused else "accepted"
        reply = "550 5.7.1 rejected (eval)" if refused else "250 2.0.0 accepted (eval)"
        message = ledger.message_row(verdict, outcome, reply, NODE, decided)
        status = {
            d.rcpt: RcptStatus.DELIVERED if d.action in DELIVERABLE else _STATUS[d.action]
            for d in verdict.decisions
        }
        rows = ledger.recipient_rows(verdict, status, {})
        for row in rows:  # every row the same keys: one executemany for the batch
            delivered = row["status"] == RcptStatus.DELIVERED
            row["delivered_at"] = decided if delivered else None
            row["attempts"] = 1 if delivered else 0
        self.pending.append((message, rows, label))
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        with self.engine.begin() as conn:
            ledger.record_many(conn, [(m, rows) for m, rows, _ in self.pending])
            for message, _, label in self.pending:
                add_feedback(conn, message["id"], label, source="eval", when=datetime.now(UTC))
        self.written += len(self.pending)
        self.pending = []
