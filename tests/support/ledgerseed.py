"""Ledger rows for tests and benches: mails with known verdicts, written directly.

The report reads only the ledger, so a seeded ledger with known events gives
known numbers. `Seed.mail` writes one message with one recipient (or several)
as the gateway would have recorded it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from gateway.store import ledger

_ids = itertools.count(1)


def message_row(queue_id: str, received_at: datetime, outcome: str = "accepted", **extra: Any):
    row = {
        "id": queue_id,
        "node": "seed",
        "received_at": received_at,
        "decided_at": received_at,
        "client_ip": "192.0.2.1",
        "mail_from": "sender@example.org",
        "message_id_header": f"<{queue_id}@example.org>",
        "size": 1000,
        "sha256": "0" * 64,
        "outcome": outcome,
        "virus_found": False,
    }
    row.update(extra)
    return row


def recipient_row(
    queue_id: str,
    rcpt: str,
    received_at: datetime,
    *,
    action: str = "accept",
    spam: bool = False,
    virus: bool = False,
    cleaned: bool = False,
    av_mode: str | None = "clean",
    av_enabled: bool | None = True,
    status: str | None = None,
    delay_s: float | None = 1.0,
    attempts: int = 1,
) -> dict[str, Any]:
    if status is None:
        status = {"accept": "delivered", "tag": "delivered", "reject": "rejected"}.get(
            action, "quarantined"
        )
    delivered = status in ("delivered", "released") and delay_s is not None
    return {
        "message_id": queue_id,
        "rcpt": rcpt,
        "domain": rcpt.rpartition("@")[2].lower(),
        "action": action,
        "score": 20.0 if spam else 0.0,
        "spam": spam,
        "av_enabled": av_enabled,
        "av_mode": av_mode,
        "virus_found": virus,
        "cleaned": cleaned,
        "status": status,
        "delivered_at": received_at + timedelta(seconds=delay_s) if delivered else None,
        "attempts": attempts,
    }


@dataclass
class Seed:
    engine: Engine
    messages: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[dict[str, Any]] = field(default_factory=list)

    def mail(
        self,
        rcpt: str | list[str],
        received_at: datetime,
        outcome: str | None = None,
        **verdict: Any,
    ) -> str:
        """One mail to one or several recipients with the same verdict; its queue id."""
        queue_id = f"S{next(_ids):09d}"
        rcpts = [rcpt] if isinstance(rcpt, str) else rcpt
        if outcome is None:
            outcome = "rejected" if verdict.get("action") == "reject" else "accepted"
        self.messages.append(
            message_row(
                queue_id, received_at, outcome, virus_found=bool(verdict.get("virus", False))
            )
        )
        for r in rcpts:
            self.recipients.append(recipient_row(queue_id, r, received_at, **verdict))
        return queue_id

    def many(self, count: int, rcpt: str, received_at: datetime, **verdict: Any) -> list[str]:
        return [self.mail(rcpt, received_at, **verdict) for _ in range(count)]

    def commit(self) -> None:
        with self.engine.begin() as conn:
            if self.messages:
                conn.execute(insert(ledger.messages), self.messages)
            if self.recipients:
                conn.execute(insert(ledger.recipients), self.recipients)
        self.messages, self.recipients = [], []
