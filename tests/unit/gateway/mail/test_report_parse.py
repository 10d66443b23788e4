"""Finding the reported mail in a forwarded, attached, inline or bounced report."""

from __future__ import annotations

from email.message import EmailMessage

from gateway.mail.report_parse import references

QID = "0005F1A2B3C4D5E6F7A8B"
ORIGINAL = (
    f"Received: from mx.sender.test (unknown [192.0.2.7]) by mx.example.test (mailwarden)\r\n"
    f" with ESMTP id {QID} for <u@example.test>; Tue, 01 Dec 2026 10:00:00 +0000\r\n"
    "Received: from elsewhere by mx.sender.test id 123\r\n"
    "From: spammer@sender.test\r\nTo: u@example.test\r\nSubject: win\r\n"
    "Message-ID: <orig-1@sender.test>\r\n\r\nbuy now\r\n"
).encode()


def test_attached_original_gives_queue_id_message_id_and_bytes():
    report = EmailMessage()
    report["From"] = "u@example.test"
    report["To"] = "spam-report@example.test"
    report["Message-ID"] = "<report-1@example.test>"
    report.set_content("this is spam")
    report.add_attachment(ORIGINAL, maintype="message", subtype="rfc822")
    refs = references(report.as_bytes())
    assert refs.queue_ids == [QID]
    assert refs.message_ids == ["<orig-1@sender.test>"]
    assert refs.original is not None and b"buy now" in refs.original


def test_eml_file_attachment():
    report = EmailMessage()
    report["Message-ID"] = "<report-2@example.test>"
    report.set_content("see attached")
    report.add_attachment(
        ORIGINAL, maintype="application", subtype="octet-stream", filename="spam.eml"
    )
    refs = references(report.as_bytes())
    assert refs.queue_ids == [QID] and refs.original == ORIGINAL


def test_inline_forward_with_pasted_headers_but_not_the_reports_own_id():
    text = (
        b"Message-ID: <report-3@example.test>\r\nSubject: Fwd: win\r\n\r\n"
        b"---------- Forwarded message ---------\r\n"
        b"From: spammer@sender.test\r\n"
        b"Message-ID: <orig-1@sender.test>\r\n"
        b"Subject: win\r\n\r\nbuy now\r\n"
    )
    refs = references(text)
    assert refs.queue_ids == [] and refs.message_ids == ["<orig-1@sender.test>"]
    assert refs.original is None


def test_bounced_original_keeps_its_headers():
    bounced = b"Resent-From: u@example.test\r\nResent-To: spam-report@example.test\r\n" + ORIGINAL
    refs = references(bounced)
    assert refs.queue_ids == [QID] and refs.message_ids == ["<orig-1@sender.test>"]
    assert refs.original == bounced


def test_a_report_with_nothing_to_go_on():
    refs = references(b"Message-ID: <r@x>\r\nSubject: spam!!\r\n\r\nI get too much spam\r\n")
    assert refs.queue_ids == [] and refs.message_ids == [] and refs.original is None


def test_attached_original_in_7bit_as_most_clients_send_it():
    import email
    import email.policy

    report = EmailMessage()
    report["Message-ID"] = "<report-4@example.test>"
    report.set_content("spam, see attached")
    report.add_attachment(email.message_from_bytes(ORIGINAL, policy=email.policy.default))
    raw = report.as_bytes()
    assert b"Content-Type: message/rfc822" in raw and b"base64" not in raw
    refs = references(raw)
    assert refs.queue_ids == [QID] and refs.message_ids == ["<orig-1@sender.test>"]
