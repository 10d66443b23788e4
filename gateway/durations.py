"""Durations as people write them (`45s`, `30m`, `12h`, `7d`, `2w`): one reader for the
configuration file and the command line alike."""

from __future__ import annotations

import re

DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_HELP = "a duration: 45s, 30m, 12h, 7d, 2w"


def seconds_of(text: str, bare_unit: str = "s") -> float:
    """`7d` -> 604800.0; a bare number counts in `bare_unit`. ValueError if unreadable."""
    value = text.strip().lower()
    match = DURATION.match(value)
    if match:
        amount, unit = float(match.group(1)), match.group(2)
    else:
        try:
            amount, unit = float(value), bare_unit
        except ValueError:
            raise ValueError(f"{text!r}: expected {DURATION_HELP}") from None
    return amount * UNIT_SECONDS[unit]
