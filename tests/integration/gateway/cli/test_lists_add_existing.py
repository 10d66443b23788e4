"""`lists add` of an entry that exists: refused, or merged with --update."""

from __future__ import annotations

import json

from tests.integration.gateway.cli.operator_run import mailwarden
from tests.support.gateway import write_config


def _entry(config, value: str) -> dict:
    done = mailwarden("lists", "show", "--json", "-c", str(config))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    entries = shown["entries"] if isinstance(shown, dict) else shown
    (entry,) = [e for e in entries if e["value"] == value]
    return entry


def test_adding_an_existing_entry_is_refused_and_keeps_reason_and_expiry(tmp_path):
    config = write_config(tmp_path, "127.0.0.1:9")
    first = mailwarden(
        "lists", "add", "block", "192.0.2.7", "--reason", "spam run", "--expires", "7d",
        "--by", "ann", "-c", str(config),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    before = _entry(config, "192.0.2.7")

    again = mailwarden("lists", "add", "block", "192.0.2.7", "-c", str(config))
    assert again.returncode == 2
    assert "exists" in again.stderr and "--update" in again.stderr
    assert "spam run" in again.stderr and "ann" in again.stderr
    assert _entry(config, "192.0.2.7") == before  # reason and expiry not wiped


def test_update_merges_only_what_is_given(tmp_path):
    config = write_config(tmp_path, "127.0.0.1:9")
    first = mailwarden(
        "lists", "add", "block", "192.0.2.7", "--reason", "spam run", "--expires", "7d",
        "--by", "ann", "-c", str(config),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    before = _entry(config, "192.0.2.7")
    longer = mailwarden(
        "lists", "add", "block", "192.0.2.7", "--expires", "30d", "--update", "--by", "bob",
        "-c", str(config),
    )  # fmt: skip
    assert longer.returncode == 0, longer.stderr
    assert longer.stdout.startswith("updated: block")
    after = _entry(config, "192.0.2.7")
    assert after["reason"] == "spam run"  # kept
    assert after["added_by"] == "ann"  # who added it stays
    assert after["expires_at"] > before["expires_at"]  # the new expiry
