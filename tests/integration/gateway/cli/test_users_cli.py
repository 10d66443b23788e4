"""`mailwarden users ...` as an operator types it: passwords on stdin, argon2 in the
database, every change in the audit log."""

from __future__ import annotations

import json
import subprocess

from gateway.store import audit, users
from gateway.store.db import make_engine
from tests.integration.gateway.cli.operator_run import MAILWARDEN
from tests.support.gateway import write_config


def run(config, *args, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAILWARDEN, "users", *args, "-c", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_users_add_list_passwd_remove_with_audit(tmp_path):
    config = write_config(tmp_path, "127.0.0.1:9", {})
    added = run(
        config,
        "add", "ann", "--role", "abuse-staff", "--domain", "Example.COM", "--domain", "b.example",
        "--password-stdin", "--by", "root-op",
        stdin="correct horse battery\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "ann: abuse-staff (b.example, example.com)" in added.stdout

    listed = json.loads(run(config, "list", "--json").stdout)
    assert listed == [
        {"name": "ann", "role": "abuse-staff", "domains": ["b.example", "example.com"]}
    ]
    table = run(config, "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "DOMAINS"]

    # refusals name what is wrong, exit 2
    short = run(config, "add", "bob", "--role", "operator", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    nodomain = run(
        config, "add", "bob", "--role", "domain-admin", "--password-stdin", stdin="x" * 12 + "\n"
    )
    assert nodomain.returncode == 2 and "at least one --domain" in nodomain.stderr
    again = run(
        config, "add", "ann", "--role", "operator", "--password-stdin", stdin="y" * 12 + "\n"
    )
    assert again.returncode == 2 and "exists" in again.stderr

    from gateway.config import load_settings

    engine = make_engine(load_settings(config).store.url)
    try:
        assert users.authenticate(engine, "ann", "correct horse battery") is not None
        assert users.authenticate(engine, "ann", "wrong password!") is None
        with engine.connect() as conn:
            stored = conn.execute(users.users.select()).one().password_hash
        assert stored.startswith("$argon2id$") and "correct" not in stored

        changed = run(config, "passwd", "ann", "--password-stdin", stdin="a new long secret\n")
        assert changed.returncode == 0, changed.stderr
        assert users.authenticate(engine, "ann", "correct horse battery") is None
        assert users.authenticate(engine, "ann", "a new long secret") is not None

        assert run(config, "remove", "ann").returncode == 0
        gone = run(config, "remove", "ann")
        assert gone.returncode == 2 and "no such user" in gone.stderr
        assert users.get(engine, "ann") is None

        rows = audit.entries(engine)
        assert [r["action"] for r in rows] == ["users.remove", "users.passwd", "users.add"]
        assert rows[-1]["actor"] == "root-op" and rows[-1]["address"] == "cli"
        assert rows[-1]["after"]["domains"] == ["b.example", "example.com"]
        assert rows[0]["before"]["name"] == "ann"
        assert all("secret" not in json.dumps(r, default=str) for r in rows)
    finally:
        engine.dispose()
