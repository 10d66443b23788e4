"""Per-domain rules in the database (gateway/store/rules_store.py) on SQLite and the
real PostgreSQL: versions with who/when, history kept, rollback, refusals with lines."""

from __future__ import annotations

import pytest

from gateway.config import settings_from_dict
from gateway.pipeline.rules_db import checker
from gateway.store import rules_store

GOOD = (
    "domain: example.test\nrules:\n  - name: one\n"
    "    when: {subject: {contains: pills}}\n    then: {score: 3}\n"
)
OTHER = "domain: example.test\nthresholds: {tag: 4.0, quarantine: 6.0, reject: 20.0}\n"


@pytest.fixture
def check(tmp_path):
    return checker(settings_from_dict({"domains": {"accept": ["example.test", "other.test"]}}))


def test_every_save_is_a_new_version_and_the_previous_are_kept(engine, check):
    first = rules_store.save(engine, "Example.TEST", GOOD, "alice", check=check, comment="start")
    second = rules_store.save(engine, "example.test", OTHER, "bob", check=check)
    assert (first.version, second.version) == (1, 2)
    now = rules_store.current(engine, "example.test")
    assert now is not None and now.text == OTHER and now.created_by == "bob"
    assert [v.version for v in rules_store.history(engine, "example.test")] == [2, 1]
    old = rules_store.get(engine, "example.test", 1)
    assert old is not None and old.text == GOOD and old.comment == "start"
    assert old.created_at.tzinfo is not None
    assert rules_store.current(engine, "other.test") is None
    assert rules_store.change_counter(engine) == second.id > first.id


def test_rollback_is_a_new_version_copying_the_old_one(engine, check):
    rules_store.save(engine, "example.test", GOOD, "alice", check=check)
    rules_store.save(engine, "example.test", OTHER, "alice", check=check)
    back = rules_store.rollback(engine, "example.test", 1, "carol", check=check)
    assert (back.version, back.copied_from, back.text) == (3, 1, GOOD)
    assert back.comment == "rollback to version 1" and back.created_by == "carol"
    assert len(rules_store.history(engine, "example.test")) == 3
    with pytest.raises(rules_store.UnknownVersion):
        rules_store.rollback(engine, "example.test", 9, "carol", check=check)


def test_an_invalid_text_is_refused_with_every_line_and_nothing_saved(engine, check):
    bad = (
        "domain: example.test\n"
        "thresholds: {tag: 9, quarantine: 8}\n"
        "rules:\n"
        "  - name: typo\n"
        "    when: {sujbect: {contains: x}}\n"
        "    then: {score: 1}\n"
    )
    with pytest.raises(rules_store.RulesInvalid) as info:
        rules_store.save(engine, "example.test", bad, "alice", check=check)
    lines = [e.line for e in info.value.errors]
    assert lines == [2, 5]
    assert "did you mean 'subject'" in info.value.errors[1].message
    assert rules_store.history(engine, "example.test") == []


def test_a_text_for_another_domain_is_refused(engine, check):
    with pytest.raises(rules_store.RulesInvalid) as info:
        rules_store.save(engine, "other.test", GOOD, "alice", check=check)
    assert info.value.errors[0].line == 1
    assert "these are the rules of other.test" in info.value.errors[0].message


def test_a_domain_kept_in_rules_dir_is_read_only_and_says_why(engine, tmp_path):
    rules_dir = tmp_path / "rules.d"
    rules_dir.mkdir()
    (rules_dir / "example.test.yaml").write_text("domain: example.test\n")
    settings = settings_from_dict(
        {"domains": {"accept": ["example.test", "other.test"]}, "rules": {"dir": str(rules_dir)}}
    )
    check = checker(settings)
    with pytest.raises(rules_store.RulesReadOnly, match=r"example\.test\.yaml \(\[rules\] dir\)"):
        rules_store.save(engine, "example.test", GOOD, "alice", check=check)
    other = "domain: other.test\n"
    assert rules_store.save(engine, "other.test", other, "alice", check=check).version == 1
