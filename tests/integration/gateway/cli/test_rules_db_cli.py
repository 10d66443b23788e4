"""`mailwarden rules import|export|history|rollback` as an operator runs them."""

from __future__ import annotations

import json

from gateway.config import load_settings
from gateway.store import audit
from gateway.store.db import make_engine
from tests.integration.gateway.cli.operator_run import mailwarden
from tests.support.gateway import write_config

V1 = (
    "domain: example.test\nrules:\n  - name: pills\n"
    "    when: {subject: {contains: pills}}\n    then: {score: 3}\n"
)
V2 = "domain: example.test\nthresholds: {tag: 4.0, quarantine: 6.0, reject: 20.0}\n"


def test_import_export_history_rollback(tmp_path, sink):
    config = str(write_config(tmp_path, sink.address))
    one, two = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    one.write_text(V1)
    two.write_text(V2)
    done = mailwarden("rules", "import", "example.test", str(one), "--by", "alice", "-c", config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "example.test: version 1 saved (by alice)"
    assert (
        mailwarden(
            "rules", "import", "example.test", str(two), "--by", "bob", "-c", config
        ).returncode
        == 0
    )

    assert mailwarden("rules", "export", "example.test", "-c", config).stdout == V2
    old = mailwarden("rules", "export", "example.test", "--version", "1", "-c", config)
    assert old.stdout == V1

    back = mailwarden("rules", "rollback", "example.test", "1", "--by", "carol", "-c", config)
    assert back.returncode == 0, back.stderr
    assert "version 3 saved, a copy of version 1 (by carol)" in back.stdout
    assert mailwarden("rules", "export", "example.test", "-c", config).stdout == V1

    table = mailwarden("rules", "history", "example.test", "-c", config)
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "WHEN", "BY", "COMMENT"]
    assert lines[1].split()[0] == "3" and "carol" in lines[1] and "(in force)" in lines[1]
    assert "imported from v1.yaml" in lines[3]
    history = json.loads(
        mailwarden("rules", "history", "example.test", "--json", "-c", config).stdout
    )
    assert [v["version"] for v in history["versions"]] == [3, 2, 1]
    assert history["versions"][0]["copied_from"] == 1 and history["read_only"] is None
    assert history["versions"][2]["created_at"].endswith("+00:00")

    # every save is in the audit log, with who and the versions before and after
    engine = make_engine(load_settings(config).store.url)
    try:
        rows = audit.entries(engine, ["example.test"])
    finally:
        engine.dispose()
    assert [(r["action"], r["actor"], r["address"]) for r in rows] == [
        ("rules.rollback", "carol", "cli"),
        ("rules.save", "bob", "cli"),
        ("rules.save", "alice", "cli"),
    ]
    assert (rows[0]["before"], rows[0]["after"]) == ({"version": 2}, {"version": 3})


def test_import_of_a_broken_file_names_file_and_line_and_saves_nothing(tmp_path, sink):
    config = str(write_config(tmp_path, sink.address))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "domain: example.test\nrules:\n  - name: x\n"
        "    when: {sujbect: {contains: a}}\n    then: {score: 1}\n"
    )
    done = mailwarden("rules", "import", "example.test", str(bad), "-c", config)
    assert done.returncode == 2
    assert f"{bad}:4: " in done.stderr and "did you mean 'subject'" in done.stderr
    assert "nothing saved" in done.stderr
    empty = mailwarden("rules", "export", "example.test", "-c", config)
    assert empty.returncode == 2 and "has no rules in the database" in empty.stderr
    gone = mailwarden("rules", "rollback", "example.test", "4", "-c", config)
    assert gone.returncode == 2 and "example.test has no rules version 4" in gone.stderr
    foreign = mailwarden("rules", "history", "stranger.test", "-c", config)
    assert foreign.returncode == 2 and "not one of the domains" in foreign.stderr


def test_a_domain_in_rules_dir_is_read_only(tmp_path, sink):
    rules_dir = tmp_path / "rules.d"
    rules_dir.mkdir()
    (rules_dir / "example.test.yaml").write_text("domain: example.test\n")
    config = str(write_config(tmp_path, sink.address, {"rules": {"dir": str(rules_dir)}}))
    one = tmp_path / "v1.yaml"
    one.write_text(V1)
    done = mailwarden("rules", "import", "example.test", str(one), "-c", config)
    assert (
        done.returncode == 2 and "read from" in done.stderr and "example.test.yaml" in done.stderr
    )
    history = json.loads(
        mailwarden("rules", "history", "example.test", "--json", "-c", config).stdout
    )
    assert "[rules] dir" in history["read_only"]


def test_thresholds_and_report_addresses_on_the_command_line(tmp_path, sink):
    """The console's actions from the shell: show, set (options not given keep what the
    domain sets), a clear error; each change a rules version and an audit row."""
    config = str(write_config(tmp_path, sink.address))
    one = tmp_path / "v1.yaml"
    one.write_text(V1)
    assert mailwarden("rules", "import", "example.test", str(one), "-c", config).returncode == 0
    shown = mailwarden("rules", "thresholds", "example.test", "-c", config)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "tag         5.0  (default)",
        "quarantine  10.0  (default)",
        "reject      15.0  (default)",
    ]
    tag = ("rules", "thresholds", "example.test", "--tag", "4", "--by", "alice", "-c", config)
    assert mailwarden(*tag).returncode == 0
    both = mailwarden(
        "rules", "thresholds", "example.test", "--reject", "never", "--json", "-c", config
    )
    assert json.loads(both.stdout)["set"] == {"tag": 4.0, "reject": None}
    falling = mailwarden("rules", "thresholds", "example.test", "--quarantine", "3", "-c", config)
    assert falling.returncode != 0
    assert "tag (4) is above quarantine (3)" in falling.stderr
    spam = mailwarden(
        "rules", "report-addresses", "example.test", "--spam", "junk", "--json", "-c", config
    )
    assert json.loads(spam.stdout)["effective"]["spam"] == "junk@example.test"
    text = mailwarden("rules", "export", "example.test", "-c", config).stdout
    assert "name: pills" in text and "thresholds: {tag: 4, reject: null}" in text
    assert 'report_addresses: {spam: "junk"}' in text
    engine = make_engine(load_settings(config).store.url)
    try:
        actions = [r["action"] for r in audit.entries(engine, ["example.test"])]
    finally:
        engine.dispose()
    assert actions[:3] == ["report_addresses.set", "thresholds.set", "thresholds.set"]
