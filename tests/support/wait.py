"""Waiting for something a server does in its own time (a mail arriving, a row
written, a node picking up a change): one loop for every test."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, step: float = 0.05) -> T:
    """The predicate's first truthy value; AssertionError with its last value after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not met within {timeout:g} s (last value: {value!r})")
        time.sleep(step)
