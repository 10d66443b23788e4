"""`mailwarden eval --report`: a labelled corpus through the pipeline offline, written to
a scratch ledger, graded by the same monthly report the gateway is held to."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from tests.integration.gateway.cli.operator_run import mailwarden
from tests.support.corpusgen import write_tar


def test_eval_report_grades_the_corpus_as_the_monthly_report_would(tmp_path):
    corpus = write_tar(tmp_path / "c.tar.gz", 30, 25)
    ledger = tmp_path / "scratch.db"
    run = mailwarden(
        "eval", "--corpus", str(corpus), "--split", "all", "--report", "--json",
        "--ledger", str(ledger), "--profile", "tencent",
        env={"MAILWARDEN_PROGRESS_SECONDS": "0"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    report = out["report"]
    assert report["month"] == f"{datetime.now(UTC):%Y-%m}"
    overall = report["overall"]
    assert overall["profile"]["name"] == "tencent"
    assert overall["counts"]["recipients"] == 55
    spam, fp = overall["spam_filter_rate"], overall["false_positive_rate"]
    assert spam["denominator"] == 25 and fp["denominator"] == 30
    assert spam["numerator"] == round(out["spam_recall"] * 25)  # as eval judged them
    assert fp["numerator"] == out["false_positives"]
    assert spam["guarantee"] == 0.97 and spam["status"] in ("met", "missed", "not enough data")
    assert fp["status"] == "not enough data"  # 30 legitimate mails cannot show <= 0.01%
    assert list(report["domains"]) == ["eval.invalid"]
    with sqlite3.connect(ledger) as db:  # kept, for `mailwarden report` to read again
        assert db.execute("select count(*) from messages").fetchone() == (55,)
        assert db.execute("select count(*) from feedback where source='eval'").fetchone() == (55,)
    assert "mailwarden eval: scored 55 msg" in run.stderr and "done in" in run.stderr

    text = mailwarden("eval", "--corpus", str(corpus), "--split", "all", "--report", "--quiet")
    assert text.returncode == 0, text.stderr
    assert text.stderr == ""
    assert "spam recall" in text.stdout and "== eval.invalid (profile strict) ==" in text.stdout

    again = mailwarden("eval", "--corpus", str(corpus), "--report", "--ledger", str(ledger))
    assert again.returncode == 2 and "exists already" in again.stderr
    both = mailwarden("eval", "--corpus", str(corpus), "--report", "--model-only")
    assert both.returncode == 2 and "--model-only" in both.stderr
