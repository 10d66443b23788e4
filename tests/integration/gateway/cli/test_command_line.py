"""The command line as an operator uses it: --version, default config path, -v anywhere."""

from __future__ import annotations

import re

from tests.integration.gateway.cli.operator_run import mailwarden
from tests.support.gateway import write_config


def test_version_prints_the_installed_version():
    done = mailwarden("--version")
    assert done.returncode == 0
    assert re.fullmatch(r"mailwarden \d+\.\d+\.\d+\S*\n", done.stdout), done.stdout


def test_queue_without_config_uses_mailwarden_config(tmp_path):
    config = write_config(tmp_path, "127.0.0.1:9")
    (tmp_path / "spool" / "queue").mkdir(parents=True)
    done = mailwarden("queue", env={"MAILWARDEN_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "queue is empty"


def test_without_config_anywhere_the_error_names_the_default_path(tmp_path):
    done = mailwarden("queue", cwd=tmp_path)
    assert done.returncode == 2
    assert "/etc/mailwarden/mailwarden.toml: config file not found" in done.stderr
    assert "MAILWARDEN_CONFIG" in done.stderr


def test_explicit_config_wins_over_the_environment(tmp_path):
    config = write_config(tmp_path, "127.0.0.1:9")
    (tmp_path / "spool" / "queue").mkdir(parents=True)
    done = mailwarden(
        "queue", "--config", str(config), env={"MAILWARDEN_CONFIG": str(tmp_path / "no.toml")}
    )
    assert done.returncode == 0, done.stderr


def test_verbose_is_accepted_after_the_subcommand(tmp_path):
    config = write_config(tmp_path, "127.0.0.1:9")
    (tmp_path / "spool" / "queue").mkdir(parents=True)
    for argv in (("-v", "queue", "-c", str(config)), ("queue", "-c", str(config), "-v")):
        done = mailwarden(*argv)
        assert done.returncode == 0, (argv, done.stderr)
    nested = mailwarden("quarantine", "list", "-c", str(config), "-v", "-v")
    assert "unrecognized arguments" not in nested.stderr
    assert nested.returncode == 0, nested.stderr
