"""`mailwarden train --update MODEL --from-feedback YYYY-MM`: the month's feedback teaches
the classifier, from the originals the gateway kept (quarantine copies)."""

from __future__ import annotations

import json
import smtplib
from datetime import UTC, datetime

from tests.integration.gateway.cli.operator_run import mailwarden
from tests.support.corpusgen import write_tar
from tests.support.mailgen import labelled
from training.model import SpamModel


def test_feedback_of_the_month_updates_the_model(make_gateway, sink, tmp_path):
    gw = make_gateway(  # everything without a Date header is held, nothing refused
        policy={"symbols": {"HEADER_MISSING_DATE": 11.0}, "thresholds": {"reject": 1000.0}}
    )
    config = str(gw.config)
    mails = labelled(3, 4, seed=5)  # held: no Date header
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        for _, raw in mails:
            client.sendmail("a@sender.test", ["bob@example.test"], raw)
        client.sendmail(
            "a@sender.test",
            ["bob@example.test"],
            b"From: a@sender.test\r\nTo: bob@example.test\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000"
            b"\r\nSubject: delivered\r\n\r\nhello\r\n",
        )
    held = json.loads(mailwarden("quarantine", "list", "-c", config, "--json").stdout)
    assert len(held) == 7
    listed = json.loads(
        mailwarden("trace", "--rcpt", "bob@example.test", "-c", config, "--json").stdout
    )
    queue_ids = {m["subject"]: m["queue_id"] for m in listed["messages"]}
    by_item = sorted(held, key=lambda i: i["created_at"])
    for (label, _), item in zip(mails, by_item, strict=True):
        word = "ham" if label == 0 else "spam"
        said = mailwarden("feedback", word, item["message_id"], "-c", config, "--by", "staff")
        assert said.returncode == 0, said.stderr
    said = mailwarden("feedback", "spam", queue_ids["delivered"], "-c", config)  # no copy kept
    assert said.returncode == 0, said.stderr

    base = tmp_path / "base.skops"
    corpus = write_tar(tmp_path / "c.tar.gz", 40, 40)
    trained = mailwarden(
        "train", "--corpus", str(corpus), "--out", str(base), "--epochs", "2", "--jobs", "1",
        "--max-fpr", "0.05", "--threshold-folds", "0", "--quiet",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert trained.stderr == ""

    month = f"{datetime.now(UTC):%Y-%m}"
    updated = tmp_path / "updated.skops"
    run = mailwarden(
        "train", "--update", str(base), "--from-feedback", month, "-c", config,
        "--out", str(updated), "--jobs", "1",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "updated with 3 ham and 4 spam (threshold kept)" in run.stdout
    assert f"feedback of {month}: spam 4, ham 3, no_original_kept 1" in run.stderr
    before, after = SpamModel.load(base), SpamModel.load(updated)
    assert after.threshold == before.threshold
    assert after.metadata["updates"] == [{"ham": 3, "spam": 4}]

    empty = mailwarden(
        "train", "--update", str(base), "--from-feedback", "2020-01", "-c", config,
        "--out", str(tmp_path / "none.skops"),
    )  # fmt: skip
    assert empty.returncode == 2 and "no feedback with a stored original" in empty.stderr
    alone = mailwarden("train", "--from-feedback", month, "-c", config, "--out", str(updated))
    assert alone.returncode == 2 and "only with --update" in alone.stderr
