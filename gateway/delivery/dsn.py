"""Delivery status notifications (RFC 3464) for mail we accepted but could not deliver."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

from gateway.mail.render import split_message
from gateway.store.spool import Job, RcptState


def _status_of(rcpt: RcptState) -> str:
    if rcpt.dsn_status:
        return rcpt.dsn_status
    return "4.4.7" if rcpt.last_error and rcpt.last_error.startswith("expired") else "5.0.0"


def build_dsn(
    job: Job,
    failed: Sequence[RcptState],
    original: bytes,
    hostname: str,
    remote_mta: str,
    now: datetime | None = None,
) -> bytes:
    """A multipart/report bounce to job.mail_from with the original headers attached."""
    now = now or datetime.now(UTC)
    boundary = f"=_mailwarden_{secrets.token_hex(12)}"
    arrival = datetime.fromtimestamp(job.received_at, UTC)
    fields, _ = split_message(original)
    original_headers = b"".join(fields)

    lines = [
        "This is the mail gateway at " + hostname + ".",
        "",
        "Your message could not be delivered to the following recipients:",
        "",
    ]
    for r in failed:
        lines.append(f"  <{r.rcpt}>: {r.last_error or 'delivery failed'}")
    lines += ["", "The headers of your message are attached."]
    human = "\r\n".join(lines) + "\r\n"

    status = [
        f"Reporting-MTA: dns; {hostname}",
        f"X-Mailwarden-Queue-ID: {job.queue_id}",
        f"Arrival-Date: {format_datetime(arrival)}",
        "",
    ]
    for r in failed:
        status += [
            f"Final-Recipient: rfc822; {r.rcpt}",
            "Action: failed",
            f"Status: {_status_of(r)}",
            f"Remote-MTA: dns; {remote_mta}",
        ]
        if r.last_error:
            status.append(f"Diagnostic-Code: smtp; {' '.join(r.last_error.split())}")
        status += [f"Last-Attempt-Date: {format_datetime(now)}", ""]
    delivery_status = "\r\n".join(status)

    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{job.mail_from}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(now)}",
        f"Message-ID: {make_msgid(domain=hostname)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "",
        "This is a MIME-encapsulated delivery status notification.",
        "",
    ]
    body = "\r\n".join(head) + "\r\n"
    body += f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n"
    body += "Content-Description: Notification\r\n\r\n" + human + "\r\n"
    body += f"--{boundary}\r\nContent-Type: message/delivery-status\r\n"
    body += "Content-Description: Delivery report\r\n\r\n" + delivery_status + "\r\n"
    out = body.encode("utf-8")
    out += f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n".encode()
    out += b"Content-Description: Undelivered message headers\r\n\r\n" + original_headers
    out += f"\r\n--{boundary}--\r\n".encode()
    return out
