"""The heartbeat's queue report (queue_view.snapshot, from the delivery scheduler's jobs
in memory) says what the console's live view (queue_view.rows, reading the spool's
files) says: the same counts by state and the same rows, oldest first, cut to the
limit."""

from __future__ import annotations

import time

from gateway.store import queue_view
from gateway.store.spool import Job, RcptState, Spool


def _jobs(now: float) -> list[Job]:
    jobs = []
    for i in range(7):
        job = Job(
            id=f"Q{i}.0",
            queue_id=f"Q{i}",
            mail_from=f"s{i}@sender.test",
            rcpts=[RcptState("bob@example.test")],
            received_at=now - 100 * (i + 1),  # Q6 is the oldest
            next_attempt=now + 60,
        )
        if i % 3 == 1:
            job.attempts, job.last_error = 2, "451 4.3.0 try later"
        if i == 5:
            job.meta["held"] = {"by": "olga", "at": "2026-12-07T19:00:00+00:00"}
        jobs.append(job)
    return jobs


def test_the_reported_snapshot_matches_the_spool_read_back(tmp_path):
    now = time.time()
    spool = Spool(tmp_path / "spool")
    jobs = _jobs(now)
    spool.write([(job, f"Subject: {job.id}\r\n\r\nbody\r\n".encode()) for job in jobs])

    summary, rows = queue_view.snapshot(spool, jobs, limit=4, now=now)

    read_back = queue_view.rows(spool.root, now=now)
    assert summary == queue_view.summary(read_back)
    assert summary == {
        "jobs": 7,
        "active": 4,
        "deferred": 2,
        "held": 1,
        "oldest_seconds": 700.0,
    }
    assert rows == read_back[:4]
    assert [r["id"] for r in rows] == ["Q6.0", "Q5.0", "Q4.0", "Q3.0"]
    assert rows[1]["state"] == "held" and rows[2]["last_error"] == "451 4.3.0 try later"
    assert rows[0]["size"] > 0


def test_an_empty_queue():
    summary, rows = queue_view.snapshot(Spool.__new__(Spool), [], limit=100)
    assert rows == [] and summary == queue_view.summary([])


def test_a_job_in_an_attempt_is_active_not_deferred(tmp_path):
    now = time.time()
    spool = Spool(tmp_path / "spool")
    jobs = _jobs(now)
    summary, rows = queue_view.snapshot(spool, jobs, limit=7, now=now, busy={"Q1.0"})
    assert (summary["active"], summary["deferred"]) == (5, 1)
    assert {r["id"]: r["state"] for r in rows}["Q1.0"] == "active"
