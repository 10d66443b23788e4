"""Raw-byte rendering, the spool's crash recovery, DSN structure, reply codes."""

from __future__ import annotations

import email
import email.policy
import os
import re
from datetime import UTC, datetime

from gateway.delivery.dsn import build_dsn
from gateway.mail.received import normalise
from gateway.mail.render import break_long_lines, has_long_lines, render, split_message
from gateway.model import Envelope, MessageContext, Rendering
from gateway.smtp.handler import split_address
from gateway.smtp.protocol import with_enhanced_status
from gateway.store.spool import Job, RcptState, Spool, new_queue_id

RAW = (
    b"X-Spam-Flag: YES\r\nFrom: a@sender.test\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"X-Virus-Status: Clean\r\nTo: b@example.test\r\n\r\nbody \xe9\r\n"
)


def test_render_adds_ours_removes_forged_and_keeps_the_rest_byte_for_byte():
    ctx = MessageContext(
        "Q9",
        Envelope("a@s.test", ("b@example.test",), "192.0.2.1", "h.test"),
        RAW,
        datetime(2026, 11, 22, tzinfo=UTC),
    )
    out = render(ctx, Rendering((("X-Spam-Flag", "NO"),), "[SPAM]"), ["b@example.test"], "mx.t")
    fields, body = split_message(out)
    assert fields[0].startswith(b"Received: from h.test (unknown [192.0.2.1]) by mx.t")
    assert b"for <b@example.test>" in fields[0]
    assert fields[1] == b"X-Spam-Flag: NO\r\n"
    assert b"X-Virus-Status" not in out
    assert b"Subject: [SPAM] =?utf-8?q?caf=C3=A9?=\r\n" in fields
    assert fields[2:] == [
        b"From: a@sender.test\r\n",
        b"Subject: [SPAM] =?utf-8?q?caf=C3=A9?=\r\n",
        b"To: b@example.test\r\n",
    ]
    assert body == b"body \xe9\r\n"


def test_line_endings_and_long_lines():
    assert normalise(b"a\nb\r\nc\n") == (b"a\r\nb\r\nc\r\n", {"bare_lf"})
    assert normalise(b"a\r\n") == (b"a\r\n", set())
    assert normalise(b"a\rb\r\r\nc\0d") == (b"a\r\nb\r\n\r\ncd", {"bare_cr", "nul"})
    raw = b"Subject: " + b"s" * 2000 + b"\r\n\r\n" + b"b" * 2500 + b"\r\n"
    out = break_long_lines(raw)
    assert max(len(x) for x in out.split(b"\r\n")) <= 998
    fields, body = split_message(out)
    assert len(fields) == 1  # the long header stays one (folded) field
    assert body.replace(b"\r\n", b"") == b"b" * 2500


def test_long_lines_are_found_wherever_they_are():
    ok, long = b"a" * 998, b"a" * 999
    short = (b"x" * 72 + b"\r\n") * 140
    assert not has_long_lines(b"") and not has_long_lines(ok) and has_long_lines(long)
    for before, after in ((b"", b""), (short, b""), (b"", short), (short, short)):
        assert not has_long_lines(before + ok + b"\r\n" + after)
        assert has_long_lines(before + long + b"\r\n" + after)
        assert has_long_lines(before + ok + b"\r" + b"\n" * 2 + ok + b"\r\n" + after)
        assert not has_long_lines(before + (ok + b"\r\n") * 3 + ok)
    assert has_long_lines(short + b"a" * 990 + b"\r\n" + b"a" * 1005)  # the last line


def test_spool_recovery_drops_unacknowledged_partial_writes(tmp_path):
    spool = Spool(tmp_path)
    job = Job("Q1.0", "Q1", "a@s.test", [RcptState("b@example.test")], 1.0)
    spool.write([(job, b"data")])
    (spool.tmp / "Q2.0.job").write_bytes(b"MWJOB1 9")  # crashed before the rename
    (spool.tmp / "Q1.0.json").write_bytes(b"{")  # a later state, crashed before its rename
    recovered = spool.recover()
    assert [j.id for j in recovered] == ["Q1.0"]
    assert spool.read("Q1.0") == b"data"
    assert sorted(p.name for p in spool.queue.iterdir()) == ["Q1.0.job"]
    assert list(spool.tmp.iterdir()) == []
    job.rcpts[0].status, job.attempts = "delivered", 2
    spool.update(job)
    assert spool.load("Q1.0").attempts == 2
    assert [j.attempts for j in Spool(tmp_path).recover()] == [2]  # the later state wins
    assert spool.read("Q1.0") == b"data"
    spool.remove(["Q1.0"])
    assert list(spool.queue.iterdir()) == []
    assert spool.recover() == []


def test_spool_crash_in_a_removal_leaves_no_job_with_an_older_state(tmp_path):
    spool = Spool(tmp_path)
    job = Job("Q1.0", "Q1", "a@s.test", [RcptState("b@example.test")], 1.0)
    spool.write([(job, b"data")])
    job.attempts = 1
    spool.update(job)
    (spool.queue / "Q1.0.job").unlink()  # `remove` takes the .job first: killed here
    assert spool.recover() == []
    assert list(spool.queue.iterdir()) == []


def test_spool_keeps_an_unreadable_job_aside_and_sizes_the_copy(tmp_path):
    spool = Spool(tmp_path)
    data = b"Subject: x\r\n\r\n" + b"b" * 9000
    job = Job("Q1.0", "Q1", "a@s.test", [RcptState("b@example.test")], 1.0)
    job.meta["ledger"] = {"rows": ["r" * 5000]}  # a state longer than the first read
    spool.write([(job, data), (Job("Q2.0", "Q2", "a@s.test", [], 1.0), b"x")])
    assert spool.size_of("Q1.0") == len(data) and spool.read("Q1.0") == data
    assert spool.load("Q1.0").meta == job.meta
    (spool.queue / "Q2.0.job").write_bytes(b"MWJOB1 3\n{x}x")
    assert [j.id for j in spool.recover()] == ["Q1.0"]
    assert sorted(p.name for p in spool.queue.iterdir()) == ["Q1.0.job", "Q2.0.job.corrupt"]


def test_spool_of_the_two_file_layout_is_converted_at_recovery(tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    old = Job("Q1.0", "Q1", "a@s.test", [RcptState("b@example.test")], 1.0, attempts=3)
    (queue / "Q1.0.eml").write_bytes(b"data one")
    (queue / "Q1.0.json").write_bytes(old.to_json())
    (queue / "Q2.0.eml").write_bytes(b"never acknowledged")  # no state: goes
    both = Job("Q3.0", "Q3", "a@s.test", [RcptState("c@example.test")], 1.0)
    (queue / "Q3.0.eml").write_bytes(b"data three")  # converted, crashed before the unlinks
    (queue / "Q3.0.json").write_bytes(both.to_json())
    Spool(tmp_path).write([(both, b"data three")])
    other = Spool(tmp_path / "w1")  # another worker's directory, adopted as it is
    (other.queue / "Q4.0.eml").write_bytes(b"data four")
    (other.queue / "Q4.0.json").write_bytes(Job("Q4.0", "Q4", "a@s.test", [], 1.0).to_json())
    spool = Spool(tmp_path)
    assert spool.adopt(other) == 1
    recovered = spool.recover()
    assert [(j.id, j.attempts) for j in recovered] == [("Q1.0", 3), ("Q3.0", 0), ("Q4.0", 0)]
    assert [spool.read(j.id) for j in recovered] == [b"data one", b"data three", b"data four"]
    assert sorted(p.name for p in queue.iterdir()) == ["Q1.0.job", "Q3.0.job", "Q4.0.job"]


def test_queue_ids_are_unique_and_a_forked_child_does_not_repeat_its_parent():
    ids = [new_queue_id() for _ in range(3000)]  # more than one read of randomness
    assert all(re.fullmatch(r"[0-9A-F]{21}", i) for i in ids)
    assert len({i[13:] for i in ids}) == len(ids)  # the random part alone differs
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, " ".join(new_queue_id()[13:] for _ in range(100)).encode())
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        theirs = set(pipe.read().decode().split())
    ours = {new_queue_id()[13:] for _ in range(100)}
    assert len(theirs) == len(ours) == 100 and not theirs & ours


def test_dsn_is_a_multipart_report():
    job = Job("Q1.0", "Q1", "alice@s.test", [], 1_700_000_000.0)
    failed = [RcptState("bob@example.test", "bounced", "550 5.1.1 unknown", "5.1.1")]
    data = build_dsn(job, failed, RAW, "mx.example.test", "127.0.0.1:25")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["To"] == "alice@s.test" and msg["Auto-Submitted"] == "auto-replied"
    report = msg.get_payload()[1]
    assert report.get_content_type() == "message/delivery-status"
    text = data.decode()
    assert "Final-Recipient: rfc822; bob@example.test" in text
    assert "Status: 5.1.1" in text and "Diagnostic-Code: smtp; 550 5.1.1 unknown" in text


def test_every_error_reply_gets_an_enhanced_status_code():
    assert with_enhanced_status("552 Error: Too much mail data").startswith("552 5.3.4")
    assert with_enhanced_status("503 Error: need RCPT command") == (
        "503 5.5.1 Error: need RCPT command"
    )
    assert with_enhanced_status("550 5.7.1 already") == "550 5.7.1 already"
    assert with_enhanced_status("250 OK") == "250 OK"
    assert with_enhanced_status("553 5.1.3 Error: malformed address").startswith("501 5.1.3")


def test_address_syntax():
    assert split_address("Bob@Example.TEST") == ("Bob", "example.test")
    for bad in ("bob", "bob@", "@x.test", "a b@x.test", "a..b@x.test", "a@x..test", "a@@x.t"):
        assert split_address(bad) is None, bad
