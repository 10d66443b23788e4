"""Domain policy files in [rules] dir: loading, ownership, and live reload."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

from gateway.config import settings_from_dict
from gateway.pipeline.policy_files import RulesWatcher


def settings(rules_dir: Path, **rules):
    return settings_from_dict(
        {
            "domains": {"accept": ["example.test", "other.test"]},
            "rules": {"dir": str(rules_dir), **rules},
        }
    )


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))
    # a distinct mtime even on coarse-grained file systems
    stamp = path.stat().st_mtime_ns + 1_000_000_000 * (1 + len(text) % 7)
    os.utime(path, ns=(stamp, stamp))


PILLS = """\
    domain: example.test
    thresholds: {tag: 4.0}
    rules:
      - name: cheap-pills
        when: {subject: {contains: pills}}
        then: {score: 6.0}
    """


def test_loads_each_domain_file_over_the_defaults(tmp_path):
    write(tmp_path / "example.test.yaml", PILLS)
    watcher = RulesWatcher(settings(tmp_path))
    assert watcher.scan() is True
    policy = watcher.book.for_domain("example.test")
    assert [r.name for r in policy.rules] == ["cheap-pills"]
    assert policy.thresholds.tag == 4.0 and policy.thresholds.quarantine == 10.0
    assert policy.weight("RULE_CHEAP_PILLS") == 6.0
    # other domains keep the defaults
    other = watcher.book.for_domain("other.test")
    assert other.rules == () and other.thresholds.tag == 5.0
    assert watcher.scan() is False  # nothing changed


def test_a_file_for_a_domain_not_accepted_is_refused(tmp_path, caplog):
    write(tmp_path / "stranger.test.yaml", "domain: stranger.test\n")
    watcher = RulesWatcher(settings(tmp_path))
    with caplog.at_level(logging.ERROR, "mailwarden.rules"):
        watcher.scan()
    assert "stranger.test" not in watcher.book.domains
    assert "not one of the domains this gateway accepts" in caplog.text
    assert "stranger.test.yaml refused" in caplog.text


def test_a_file_cannot_set_another_domains_policy(tmp_path, caplog):
    """other.test's admin edits other.test.yaml; naming example.test inside is refused."""
    write(tmp_path / "other.test.yaml", PILLS)
    watcher = RulesWatcher(settings(tmp_path))
    with caplog.at_level(logging.ERROR, "mailwarden.rules"):
        watcher.scan()
    assert watcher.book.domains == {}
    assert "must be in example.test.yaml" in caplog.text


def test_broken_change_is_refused_and_previous_rules_stay(tmp_path, caplog):
    path = tmp_path / "example.test.yaml"
    write(path, PILLS)
    seen = []
    watcher = RulesWatcher(settings(tmp_path), on_change=seen.append)
    watcher.scan()
    write(path, PILLS.replace("contains: pills", "contans: pills"))
    with caplog.at_level(logging.ERROR, "mailwarden.rules"):
        assert watcher.scan() is False
    assert [r.name for r in watcher.book.for_domain("example.test").rules] == ["cheap-pills"]
    assert "its previous version stays in force" in caplog.text
    assert "example.test.yaml:5: " in caplog.text and "did you mean 'contains'" in caplog.text
    assert list(watcher.errors()) == [path]
    # fixed: the new version comes into force
    write(path, PILLS.replace("pills", "viagra"))
    assert watcher.scan() is True
    rule = watcher.book.for_domain("example.test").rules[0]
    assert "viagra" in repr(rule.condition)
    assert len(seen) == 2 and watcher.errors() == {}


def test_removing_the_file_restores_the_defaults(tmp_path):
    path = tmp_path / "example.test.yaml"
    write(path, PILLS)
    watcher = RulesWatcher(settings(tmp_path))
    watcher.scan()
    path.unlink()
    assert watcher.scan() is True
    assert watcher.book.for_domain("example.test").rules == ()


def test_broken_at_start_means_defaults_and_a_clear_log(tmp_path, caplog):
    write(tmp_path / "example.test.yaml", "domain: example.test\nrules: [\n")
    with caplog.at_level(logging.ERROR, "mailwarden.rules"):
        watcher = RulesWatcher(settings(tmp_path))
        watcher.scan()
    assert "example.test" not in watcher.book.domains
    assert "the domain keeps the default policy" in caplog.text
    assert "not valid YAML" in caplog.text


def test_yaml_and_yml_for_one_domain_conflict(tmp_path, caplog):
    write(tmp_path / "example.test.yaml", PILLS)
    write(tmp_path / "example.test.yml", PILLS.replace("pills", "other"))
    watcher = RulesWatcher(settings(tmp_path))
    with caplog.at_level(logging.ERROR, "mailwarden.rules"):
        watcher.scan()
    assert "already set by example.test.yaml" in caplog.text
    assert "pills" in repr(watcher.book.for_domain("example.test").rules[0].condition)
