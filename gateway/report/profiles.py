"""Guarantee profiles: what a service agreement promises, as data (rules/guarantees/*.toml).

One profile a file. The shipped ones live in rules/guarantees/; an operator adds
their own in `[report] profiles_dir` (same format; a file there with a shipped
name replaces the shipped one). Which way each promise goes is fixed by the metric,
so a profile holds only numbers: rates and availability are "at least", the
false-positive rate, delays, counts and ages "at most".
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.config import ConfigError
from gateway.paths import rules_dir

Direction = Literal["at_least", "at_most"]

# every metric of the report, in report order, and which way its promise goes
METRICS: dict[str, Direction] = {
    "virus_detection_rate": "at_least",
    "virus_clean_rate": "at_least",
    "spam_filter_rate": "at_least",
    "false_positive_rate": "at_most",
    "delay_avg_s": "at_most",
    "delay_p99_s": "at_most",
    "delay_max_s": "at_most",
    "delay_over_1h": "at_most",
    "availability": "at_least",
    "signature_age_days": "at_most",
}
RATES = {"virus_detection_rate", "virus_clean_rate", "spam_filter_rate", "false_positive_rate"}
DEFAULT_PROFILE = "strict"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    guarantees: dict[str, float]  # metric -> promised bound; absent: no promise
    tagged_counts_as_filtered: bool = False
    source: str = ""

    def guarantee(self, metric: str) -> float | None:
        return self.guarantees.get(metric)


def shipped_dir() -> Path:
    return rules_dir() / "guarantees"


def load_profile_file(path: Path) -> Profile:
    """One profile; every problem is a ConfigError naming the file (and line or key)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read guarantee profile: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"name", "description", "tagged_counts_as_filtered", "guarantees"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key (see docs/accounting.md)")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name or name != path.stem:
        raise ConfigError(f"{path}: name: must be the file name without .toml ({path.stem!r})")
    tagged = data.get("tagged_counts_as_filtered", False)
    if not isinstance(tagged, bool):
        raise ConfigError(f"{path}: tagged_counts_as_filtered: must be true or false")
    table = data.get("guarantees", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: guarantees: must be a table")
    guarantees: dict[str, float] = {}
    for metric, value in table.items():
        if metric not in METRICS:
            raise ConfigError(f"{path}: guarantees.{metric}: unknown metric")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{path}: guarantees.{metric}: must be a number >= 0")
        if (metric in RATES or metric == "availability") and value > 1:
            raise ConfigError(
                f"{path}: guarantees.{metric}: a rate is a fraction (0.99 for 99%), got {value}"
            )
        guarantees[metric] = float(value)
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        guarantees=guarantees,
        tagged_counts_as_filtered=tagged,
        source=str(path),
    )


def load_profiles(extra_dir: Path | None = None) -> dict[str, Profile]:
    """The shipped profiles, then the operator's (which may replace a shipped one)."""
    profiles: dict[str, Profile] = {}
    for directory in (shipped_dir(), extra_dir):
        if directory is None:
            continue
        if not directory.is_dir():
            raise ConfigError(f"{directory}: guarantee profile folder not found")
        for path in sorted(directory.glob("*.toml")):
            profiles[path.stem] = load_profile_file(path)
    return profiles


def choose(
    profiles: dict[str, Profile], name: str | None, default: str = DEFAULT_PROFILE
) -> Profile:
    chosen = name or default
    if chosen not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"guarantee profile {chosen!r} not found (known: {known})")
    return profiles[chosen]
