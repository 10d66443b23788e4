"""`mailwarden signatures`, `policy`, `eval-av` and the virus mail generator, as operators do."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.cli import main as cli
from tests.support import virusmail
from tests.support.clamd import ClamdServer, project_signatures_as_cud
from tests.support.gateway import write_config


def config(tmp_path, **clamav) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    extra = {"clamav": clamav} if clamav else {}
    return str(write_config(tmp_path, "127.0.0.1:2626", extra))


def test_signatures_with_only_local_databases_warns(tmp_path, clamd, capsys):
    assert cli(["signatures", "--config", config(tmp_path, socket=str(clamd.socket))]) == 1
    out, err = capsys.readouterr()
    assert "engine:    ClamAV 1." in out
    assert "database:  unknown version and date" in out
    assert "database date unknown" in err


@pytest.mark.parametrize(("age", "code"), [(2, 0), (10, 1)])
def test_signatures_age(tmp_path, capsys, age, code):
    built = datetime.now(UTC) - timedelta(days=age)
    cud = project_signatures_as_cud(27000 + age, built)
    with ClamdServer(extra_databases={"daily.cud": cud}) as server:
        cfg = config(tmp_path, address=server.address)
        assert cli(["signatures", "--config", cfg]) == code
        out, err = capsys.readouterr()
        assert f"database:  version {27000 + age}, built {built.astimezone():%Y-%m-%d}" in out
        assert f"({age}.0 days ago)" in out
        assert ("older" in err or "days old" in err) == (code == 1)
        assert cli(["signatures", "--config", cfg, "--json", "--max-age-days", "30"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["db_version"] == 27000 + age and shown["fresh"] is True
        assert shown["age_days"] == pytest.approx(age, abs=0.01)


def test_signatures_errors_are_one_line(tmp_path, capsys):
    with ClamdServer() as server:
        cfg = config(tmp_path, socket=str(server.socket))
    assert cli(["signatures", "--config", cfg]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mailwarden: cannot reach clamd at") and err.count("\n") == 1
    assert cli(["signatures", "--config", config(tmp_path / "x")]) == 2
    assert "no [clamav] section" in capsys.readouterr().err


def test_policy_set_show_clear(tmp_path, capsys):
    cfg = config(tmp_path)
    assert cli(["policy", "set", "@example.test", "--mode", "detect", "--config", cfg]) == 0
    args = ["--antivirus", "off", "--keep-original", "no", "--config", cfg]
    assert cli(["policy", "set", "Bob@Example.test", *args]) == 0
    capsys.readouterr()
    assert cli(["policy", "show", "bob@example.test", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "antivirus      off      (from bob@example.test)" in out
    assert "mode           detect   (from @example.test)" in out
    assert "keep original  no       (from bob@example.test)" in out
    assert cli(["policy", "show", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "@example.test: antivirus=inherit mode=detect keep-original=inherit" in out
    assert "bob@example.test: antivirus=off mode=inherit keep-original=no" in out
    assert cli(["policy", "clear", "bob@example.test", "--config", cfg]) == 0
    capsys.readouterr()
    assert cli(["policy", "show", "bob@example.test", "--json", "--config", cfg]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {
        "target": "bob@example.test",
        "antivirus": True,
        "mode": "detect",
        "keep_original": True,
        "from": {"enabled": "default", "mode": "@example.test", "keep_original": "default"},
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", "bob@elsewhere.test", "--mode", "clean"], "not an accepted domain"),
        (["set", "nobody", "--mode", "clean"], "neither a mailbox"),
        (["set", "bob@example.test"], "give at least one of"),
    ],
)
def test_policy_errors(tmp_path, capsys, args, message):
    assert cli(["policy", *args, "--config", config(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_generator_writes_both_corpora(tmp_path, capsys):
    assert virusmail.main(["--out", str(tmp_path), "--variants", "1"]) == 0
    viruses = sorted((tmp_path / "virus").iterdir())
    cleans = sorted((tmp_path / "clean").iterdir())
    payloads = len(virusmail.virus_payloads())
    assert payloads == 45  # EICAR and the 44 clamav-testfiles
    assert len(viruses) == len(cleans) == payloads * len(virusmail.SHAPES)
    names = " ".join(p.name for p in viruses)
    for ext in ("doc", "xls", "exe", "dll", "zip", "html"):
        assert f"-{ext}-0.eml" in names
    # the same bytes on every run
    again = tmp_path / "again"
    virusmail.generate(again, variants=1)
    for name in (viruses[7].name, viruses[-1].name):
        assert (again / "virus" / name).read_bytes() == (tmp_path / "virus" / name).read_bytes()
    assert (again / "clean" / cleans[3].name).read_bytes() == cleans[3].read_bytes()


@pytest.mark.slow  # about a minute: 1,170 messages through the whole pipeline
def test_eval_av_meets_the_service_agreement_on_the_generated_corpus(
    tmp_path, clamd, dns_server, capsys
):
    corpus = tmp_path / "corpus"
    virusmail.generate(corpus, variants=1)
    extra = {
        "clamav": {"socket": str(clamd.socket), "stream_max_length": 64 * 1024 * 1024},
        "dns": {"nameservers": [dns_server.nameserver]},  # the whole pipeline, hermetic
        # a bulk run, not a mail in flight: a loaded machine must not turn into misses
        "pipeline": {"budget": 60.0},
    }
    cfg = str(write_config(tmp_path, "127.0.0.1:2626", extra))
    code = cli(["eval-av", "--corpus", str(corpus), "--json", "--config", cfg])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary["error_files"]
    assert (summary["virus"], summary["clean"]) == (585, 585)
    assert summary["errors"] == 0
    assert summary["detection_rate"] >= 0.999, summary["missed"]
    assert summary["clean_rate"] >= 0.995, summary["not_cleaned"]
    assert summary["false_alarms"] == 0, summary["false_alarm_files"]
    low, high = summary["detection_rate_ci95"]
    assert low < summary["detection_rate"] <= high
