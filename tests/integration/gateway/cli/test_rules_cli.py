"""`mailwarden rules check` and `mailwarden rules test` as an admin uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main as cli_main
from tests.support.gateway import REPO, write_config
from tests.unit.filters.rules.test_rules_filter import make_message
from tests.unit.filters.rules.test_rules_lang import EXAMPLE


@pytest.fixture
def example(tmp_path) -> Path:
    path = tmp_path / "example.test.yaml"
    path.write_text(EXAMPLE)
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli_main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_accepts_the_example(example, capsys):
    code, out, _ = run(capsys, "rules", "check", str(example))
    assert code == 0
    assert out.strip() == f"{example}: OK, domain example.test, 3 rules"


def test_check_lists_every_error_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "domain: example.test\n"
        "thresholds: {tag: 9, quarantine: 8}\n"
        "rules:\n"
        "  - name: look-around\n"
        "    when: {body: {matches: 'pay(?=now)'}}\n"
        "    then: {score: 2}\n"
        "  - name: typo\n"
        "    when: {sujbect: {contains: x}}\n"
        "    then: {acton: reject}\n"
    )
    code, out, err = run(capsys, "rules", "check", str(bad))
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{bad}:2: thresholds: tag (9.0) is above quarantine")
    assert lines[1].startswith(f"{bad}:5: ") and "look-ahead" in lines[1]
    assert lines[2].startswith(f"{bad}:8: ") and "did you mean 'subject'" in lines[2]
    assert lines[3].startswith(f"{bad}:9: ") and "did you mean 'action'" in lines[3]
    assert lines[-1] == f"{bad}: 4 errors"


def test_check_with_config_refuses_a_domain_not_accepted(tmp_path, sink, capsys):
    config = write_config(tmp_path, sink.address)  # accepts example.test and other.test
    stranger = tmp_path / "s.yaml"
    stranger.write_text("domain: stranger.test\n")
    code, _, err = run(capsys, "rules", "check", str(stranger), "--config", str(config))
    assert code == 1
    assert f"{stranger}:1: domain stranger.test is not one of the domains" in err


def test_check_of_a_missing_file_is_an_operator_error(tmp_path, capsys):
    code, _, err = run(capsys, "rules", "check", str(tmp_path / "nope.yaml"))
    assert code == 2 and "file not found" in err


def test_test_shows_fired_rules_and_decision_as_json(example, tmp_path, capsys):
    eml = tmp_path / "m.eml"
    eml.write_bytes(make_message(subject="Cheap pills!"))
    code, out, _ = run(capsys, "rules", "test", str(example), str(eml), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["fired"] == ["cheap-pills"]
    assert report["action"] == "tag"
    assert report["decisions"][0]["rcpt"] == "bob@example.test"  # from the To: header

    exe = tmp_path / "exe.eml"
    exe.write_bytes(make_message(attachments=(("a.exe", "application/octet-stream", b"MZ"),)))
    code, out, _ = run(
        capsys, "rules", "test", str(example), str(exe), "--json", "--from", "x@partner.test"
    )
    report = json.loads(out)
    assert report["fired"] == ["partner-allow", "no-executables"]
    assert report["action"] == "reject"
    assert report["reply"] == "550 5.7.1 executables are not accepted here"

    code, out, _ = run(capsys, "rules", "test", str(example), str(eml), "--ip", "192.0.2.9")
    assert code == 0
    assert "fired:   cheap-pills, partner-allow" in out
    assert "bob@example.test: accept" in out


def test_test_runs_the_servers_chain_from_the_config(example, tmp_path, sink, capsys):
    """With --config the same filters as the server run: here the local block list."""
    config = write_config(tmp_path, sink.address)
    assert cli_main(["lists", "add", "block", "203.0.113.5", "--config", str(config)]) == 0
    capsys.readouterr()
    eml = tmp_path / "m.eml"
    eml.write_bytes(make_message(subject="hello"))
    code, out, _ = run(
        capsys,
        "rules",
        "test",
        str(example),
        str(eml),
        "--json",
        "--ip",
        "203.0.113.5",
        "--config",
        str(config),
    )
    report = json.loads(out)
    assert code == 0 and report["fired"] == []
    names = [s["name"] for s in report["decisions"][0]["symbols"]]
    assert "LOCAL_BLOCKLIST" in names
    assert report["action"] == "reject"


def test_test_with_a_broken_file_prints_the_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("domain: example.test\nrules: 5\n")
    eml = tmp_path / "m.eml"
    eml.write_bytes(make_message())
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "rules", "test", str(bad), str(eml)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{bad}:2: rules must be a list" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_shipped_example_file_is_valid(capsys):
    example = REPO / "rules" / "examples" / "example.test.yaml"
    code, out, err = run(capsys, "rules", "check", str(example))
    assert code == 0, err
    assert "5 rules" in out
