"""Durations in the configuration file read as on the command line: `30s`, `2m`, `5d`."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_settings
from tests.support.gateway import write_config


def test_durations_with_units_are_seconds(tmp_path):
    extra = {"smtp": {"idle_timeout": "2m"}, "delivery": {"retry_window": "5d"}}
    settings = load_settings(write_config(tmp_path, "127.0.0.1:2525", extra))
    assert settings.smtp.idle_timeout == 120.0
    assert settings.delivery.retry_window == 5 * 86400.0


def test_a_bare_number_is_still_seconds(tmp_path):
    settings = load_settings(write_config(tmp_path, "127.0.0.1:2525", {"smtp": {"timeout": 90}}))
    assert settings.smtp.timeout == 90.0


def test_an_unreadable_duration_names_its_key_and_the_forms(tmp_path):
    config = write_config(tmp_path, "127.0.0.1:2525", {"smtp": {"idle_timeout": "5 minutes"}})
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert "smtp.idle_timeout" in message and "45s, 30m, 12h, 7d, 2w" in message
