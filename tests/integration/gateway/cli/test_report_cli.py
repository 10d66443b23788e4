"""`mailwarden report`: the seeded ledger read back as text and JSON; clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.cli import main as cli
from gateway.store.db import create_schema, make_engine
from gateway.store.feedback import add_feedback_now
from tests.support.ledgerseed import Seed

WHEN = datetime(2026, 11, 5, 10, tzinfo=UTC)


@pytest.fixture
def config(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    create_schema(engine)
    seed = Seed(engine)
    seed.many(20, "u@a.test", WHEN, action="quarantine", spam=True)
    missed = seed.many(5, "u@a.test", WHEN)
    seed.many(3, "v@b.test", WHEN)
    seed.commit()
    add_feedback_now(engine, missed[0], "spam", source="user", actor="u@a.test")
    engine.dispose()
    path = tmp_path / "mw.toml"
    path.write_text(
        '[domains]\naccept = ["a.test", "b.test"]\n[delivery]\nnext_hop = "127.0.0.1:25"\n'
        f'[spool]\npath = "{tmp_path / "spool"}"\n[store]\nurl = "{url}"\n'
        '[report]\ndomain_profiles = { "b.test" = "21cn" }\n'
    )
    return path


def test_json_and_text(config, capsys):
    assert cli(["report", "-c", str(config), "--month", "2026-11", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    a = report["domains"]["a.test"]
    assert (a["spam_filter_rate"]["numerator"], a["spam_filter_rate"]["denominator"]) == (20, 21)
    assert report["domains"]["b.test"]["profile"]["name"] == "21cn"
    assert report["interval"]["method"] == "clopper-pearson"
    assert cli(["report", "-c", str(config), "--month", "2026-11", "--domain", "b.test"]) == 0
    text = capsys.readouterr().out
    assert "== b.test (profile 21cn) ==" in text and "a.test" not in text
    assert "spam filtering" in text and "not enough data" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2026-13"], "expected YYYY-MM"),
        (["--month", "2026-11", "--profile", "nope"], "profile 'nope' not found"),
    ],
)
def test_bad_arguments_are_one_line(config, capsys, args, message):
    assert cli(["report", "-c", str(config), *args]) == 2
    assert message in capsys.readouterr().err


def test_html_to_a_file(config, tmp_path, capsys):
    out = tmp_path / "report.html"
    args = ["report", "-c", str(config), "--month", "2026-11", "--format", "html"]
    assert cli([*args, "--domain", "a.test", "--out", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<h2>a.test</h2>" in page
    assert "b.test" not in page  # a domain's report shows only that domain
    assert capsys.readouterr().out == ""
