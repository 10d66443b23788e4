"""Feedback into the ledger: each event once, later labels override, audit kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.cli import main as cli
from gateway.store import feedback, ledger
from gateway.store.db import create_schema, make_engine
from tests.support.ledgerseed import Seed

WHEN = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


def rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(ledger.feedback).order_by(ledger.feedback.c.id)).all()


def test_labels_become_kinds_per_recipient_and_each_event_counts_once(engine):
    seed = Seed(engine)
    delivered = seed.mail(["a@x.test", "b@x.test"], WHEN)
    held = seed.mail("a@x.test", WHEN, action="quarantine", spam=True)
    seed.commit()
    first = feedback.add_feedback_now(engine, delivered, "spam", source="user", actor="a@x.test")
    assert [(r["rcpt"], r["kind"]) for r in first.recorded] == [
        ("a@x.test", ledger.MISSED_SPAM),
        ("b@x.test", ledger.MISSED_SPAM),
    ]
    again = feedback.add_feedback_now(engine, delivered, "spam", source="user", actor="a@x.test")
    assert again.recorded == [] and again.duplicates == ["a@x.test", "b@x.test"]
    released = feedback.add_feedback_now(
        engine, held, "ham", source="release", actor="ann", event="release:q1"
    )
    assert released.recorded[0]["kind"] == ledger.FALSE_POSITIVE
    by_other = feedback.add_feedback_now(
        engine, held, "ham", source="release", actor="bob", event="release:q1"
    )
    assert by_other.recorded == []  # the same release event, whoever replays it
    assert len(rows(engine)) == 3


def test_a_later_label_overrides_and_the_audit_trail_keeps_both(engine):
    seed = Seed(engine)
    qid = seed.mail(["a@x.test", "b@x.test"], WHEN)
    seed.commit()
    feedback.add_feedback_now(engine, qid, "spam", source="user", actor="a", when=WHEN)
    later = WHEN + timedelta(days=40)  # after the month: still about this mail
    feedback.add_feedback_now(
        engine, qid, "ham", source="abuse", actor="staff", rcpts=["A@x.test"], when=later
    )
    trail = feedback.history(engine, qid)
    assert [(r["rcpt"], r["kind"]) for r in trail] == [
        ("a@x.test", ledger.MISSED_SPAM),
        ("b@x.test", ledger.MISSED_SPAM),
        ("a@x.test", feedback.CONFIRMED_HAM),
    ]
    assert trail[2]["details"]["overrides"] == trail[0]["id"]
    labels = feedback.effective_labels(rows(engine))
    assert feedback.label_for(labels, qid, "a@x.test") == "ham"
    assert feedback.label_for(labels, qid, "b@x.test") == "spam"


def test_a_mail_is_found_by_queue_id_or_message_id_and_bad_targets_are_errors(engine):
    seed = Seed(engine)
    qid = seed.mail("a@x.test", WHEN)
    seed.commit()
    with engine.connect() as conn:
        assert feedback.find_message(conn, qid) == qid
        assert feedback.find_message(conn, f"<{qid}@example.org>") == qid
        assert feedback.find_message(conn, f"{qid}@example.org") == qid
        assert feedback.find_message(conn, "<nobody@nowhere>") is None
    with pytest.raises(feedback.FeedbackError, match="not a recipient"):
        feedback.add_feedback_now(engine, qid, "spam", source="cli", rcpts=["z@x.test"])
    with pytest.raises(feedback.FeedbackError, match="no such mail"):
        feedback.add_feedback_now(engine, "NOPE", "spam", source="cli")
    with pytest.raises(feedback.FeedbackError, match="unknown label"):
        feedback.add_feedback_now(engine, qid, "phish", source="cli")


def test_feedback_command(engine, tmp_path, capsys):
    seed = Seed(engine)
    qid = seed.mail(["a@x.test", "b@x.test"], WHEN, virus=False)
    seed.commit()
    config = tmp_path / "mw.toml"
    config.write_text(
        f'[domains]\naccept = ["x.test"]\n[delivery]\nnext_hop = "127.0.0.1:25"\n'
        f'[spool]\npath = "{tmp_path / "spool"}"\n[store]\nurl = "sqlite:///{tmp_path}/ledger.db"\n'
    )
    args = ["feedback", "-c", str(config), "virus", f"<{qid}@example.org>", "--rcpt", "b@x.test"]
    assert cli([*args, "--by", "abuse@x.test"]) == 0
    assert capsys.readouterr().out.strip() == f"{qid} <b@x.test>: virus (missed_virus)"
    assert cli([*args, "--by", "abuse@x.test"]) == 0
    assert "already recorded" in capsys.readouterr().out
    assert cli(["feedback", "-c", str(config), "spam", "NOPE"]) == 2
    assert "no mail with this queue id" in capsys.readouterr().err
    assert cli(["feedback", "-c", str(config), "ham", qid, "--rcpt", "c@x.test"]) == 2
    assert "c@x.test is not a recipient" in capsys.readouterr().err
    assert cli(["feedback", "-c", str(config), "history", qid]) == 0
    assert "b@x.test: missed_virus by abuse@x.test via cli" in capsys.readouterr().out
    [row] = rows(engine)
    assert (row.actor, row.source) == ("abuse@x.test", "cli")
