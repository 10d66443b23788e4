"""`[smtp] processes = 0`: one gateway per core the server may use."""

from __future__ import annotations

import os

from gateway.config import load_settings
from tests.support.gateway import write_config


def test_zero_processes_means_one_per_usable_core(tmp_path):
    settings = load_settings(write_config(tmp_path, "127.0.0.1:2525", {"smtp": {"processes": 0}}))
    assert settings.smtp.processes == len(os.sched_getaffinity(0))


def test_a_number_of_processes_is_kept(tmp_path):
    settings = load_settings(write_config(tmp_path, "127.0.0.1:2525", {"smtp": {"processes": 3}}))
    assert settings.smtp.processes == 3
