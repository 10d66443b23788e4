"""`mailwarden backup` / `restore`: the configuration round-trips SQLite -> PostgreSQL ->
SQLite with every row of every configuration table equal, through the real commands and
the real PostgreSQL; a database that is not empty is refused."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

from sqlalchemy import select

from gateway.store import av_policy, backup
from gateway.store.db import create_schema, make_engine
from gateway.store.schema import full_metadata
from tests.integration.gateway.cli.operator_run import MAILWARDEN, mailwarden
from tests.support.gateway import write_config

RULES = (
    "domain: example.test\nrules:\n  - name: pills\n"
    "    when: {subject: {contains: pills}}\n    then: {score: 3}\n",
    "domain: example.test\nthresholds: {tag: 4.0, quarantine: 6.0, reject: 20.0}\n",
)


def _config(directory, url=None):
    directory.mkdir(exist_ok=True)
    extra = {"store": {"url": url}} if url else None
    return write_config(directory, "127.0.0.1:9", extra)


def _ok(*args):
    done = mailwarden(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _seed(config, tmp_path):
    """A configuration as operators make it: by hand, by import, per domain."""
    _ok("lists", "add", "block", "192.0.2.7", "--reason", "spam run", "--by", "ann",
        "--expires", "7d", "-c", str(config))  # fmt: skip
    _ok("lists", "add", "allow", "partner.test", "--domain", "example.test", "--by", "bob",
        "--reason", "contract ünïcode", "-c", str(config))  # fmt: skip
    _ok("lists", "add", "block", "bad@spam.test", "-c", str(config))
    published = tmp_path / "drop.txt"
    published.write_text("198.51.100.0/24 ; SBL1\n203.0.113.9\n")
    _ok("lists", "import", str(published), "--source", "drop", "--by", "cron",
        "-c", str(config))  # fmt: skip
    added = subprocess.run(
        [MAILWARDEN, "users", "add", "ann", "--role", "domain-admin", "--domain", "example.test",
         "--password-stdin", "-c", str(config)],
        input="correct horse battery\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    for number, text in enumerate(RULES, start=1):  # two versions: both are kept
        rules = tmp_path / f"rules-{number}.yaml"
        rules.write_text(text)
        _ok("rules", "import", "example.test", str(rules), "--by", "alice", "-c", str(config))
    url = _url(config)
    engine = make_engine(url)
    av_policy.set_policy(engine, "@example.test", enabled=True, mode="clean", actor="ann")
    av_policy.set_policy(engine, "bob@example.test", keep_original=False, actor="bob")
    engine.dispose()


def _url(config) -> str:
    from gateway.config import load_settings

    return load_settings(config).store.url


def _rows(url: str) -> dict[str, list[dict]]:
    """Every configuration row, times as UTC (SQLite keeps none, PostgreSQL converts)."""
    tables = full_metadata().tables
    engine = make_engine(url)
    found = {}
    with engine.connect() as conn:
        for name in backup.CONFIG_TABLES:
            table = tables[name]
            order = list(table.primary_key.columns)
            rows = []
            for row in conn.execute(select(table).order_by(*order)):
                values = dict(row._mapping)
                for key, value in values.items():
                    if isinstance(value, dt.datetime):
                        values[key] = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
                        values[key] = values[key].astimezone(dt.UTC)
                rows.append(values)
            found[name] = rows
    engine.dispose()
    return found


def test_round_trip_sqlite_postgresql_sqlite_keeps_every_row(tmp_path, postgres_url):
    first = _config(tmp_path / "a")
    _seed(first, tmp_path)
    original = _rows(_url(first))
    assert len(original["list_entries"]) == 5 and len(original["av_policies"]) == 2
    assert len(original["list_imports"]) == 1
    assert [u["name"] for u in original["users"]] == ["ann"]
    assert [v["version"] for v in original["rule_versions"]] == [1, 2]

    one = tmp_path / "one.json"
    wrote = _ok("backup", "--out", str(one), "-c", str(first))
    assert "list_entries 5" in wrote.stdout and "av_policies 2" in wrote.stdout
    assert one.stat().st_mode & 0o077 == 0  # password hashes inside: the owner's only

    on_pg = _config(tmp_path / "pg", postgres_url)
    restored = _ok("restore", str(one), "-c", str(on_pg))
    assert "restored" in restored.stdout and "list_entries 5" in restored.stdout
    assert _rows(postgres_url) == original

    two = tmp_path / "two.json"
    _ok("backup", "--out", str(two), "-c", str(on_pg))
    assert json.loads(two.read_text())["tables"] == json.loads(one.read_text())["tables"]

    last = _config(tmp_path / "b")
    _ok("restore", str(two), "-c", str(last))
    assert _rows(_url(last)) == original

    # the restored database works on: new ids follow the restored ones (PostgreSQL
    # sequences), and what was restored is what the gateway's commands show
    _ok("lists", "add", "block", "192.0.2.99", "-c", str(on_pg))
    shown = json.loads(_ok("lists", "show", "--json", "-c", str(on_pg)).stdout)
    entries = shown["entries"] if isinstance(shown, dict) else shown
    assert {"192.0.2.7", "partner.test", "bad@spam.test", "192.0.2.99"} <= {
        e["value"] for e in entries
    }
    # the domain's current rules are the newest restored version, and the next import
    # continues its numbering
    exported = _ok("rules", "export", "example.test", "-c", str(on_pg))
    assert exported.stdout == RULES[1]
    # the restored user logs in with the password set before the backup
    from gateway.store import users

    engine = make_engine(postgres_url)
    assert users.authenticate(engine, "ann", "correct horse battery") is not None
    engine.dispose()


def test_restore_refuses_a_database_that_is_not_empty(tmp_path):
    config = _config(tmp_path / "a")
    _ok("lists", "add", "block", "192.0.2.7", "-c", str(config))
    saved = tmp_path / "config.json"
    _ok("backup", "--out", str(saved), "-c", str(config))
    again = mailwarden("restore", str(saved), "-c", str(config))
    assert again.returncode == 2
    assert "is not empty: list_entries (1 rows)" in again.stderr
    assert len(_rows(_url(config))["list_entries"]) == 1  # nothing added twice


def test_restore_names_file_and_line_of_a_broken_backup(tmp_path):
    config = _config(tmp_path / "a")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n "format": "mailwarden-config-backup",\n "tables": {,}\n}\n')
    done = mailwarden("restore", str(broken), "-c", str(config))
    assert done.returncode == 2
    assert f"{broken}:3: not a mailwarden backup" in done.stderr

    foreign = tmp_path / "foreign.json"
    saved = {"format": backup.FORMAT, "format_version": 1, "schema_revision": "0999",
             "tables": {"mailboxes": {"columns": [], "rows": []}}}  # fmt: skip
    foreign.write_text(json.dumps(saved))
    done = mailwarden("restore", str(foreign), "-c", str(config))
    assert done.returncode == 2
    assert "table 'mailboxes' is not a configuration table" in done.stderr


def test_every_registered_table_exists_and_restores_in_order():
    tables = full_metadata().tables
    assert all(name in tables for name in backup.CONFIG_TABLES)
    position = {name: i for i, name in enumerate(backup.CONFIG_TABLES)}
    for name in backup.CONFIG_TABLES:
        for fk in tables[name].foreign_keys:
            parent = fk.column.table.name
            if parent in position:
                assert position[parent] < position[name], (parent, name)


def test_an_empty_database_backs_up_to_empty_tables(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    create_schema(engine)
    data = backup.dump(engine)
    engine.dispose()
    assert set(data["tables"]) == set(backup.CONFIG_TABLES)
    assert all(t["rows"] == [] for t in data["tables"].values())
