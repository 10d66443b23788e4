"""Per-domain policy: thresholds, symbol weights and switches, as pure data.

The operator's TOML gives the global defaults; a domain admin's policy file
(see filters.rules.filter) overrides them for that domain only. Symbol weights ship as
data in rules/symbols/*.toml, like rspamd's scores kept apart from its checks.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.paths import rules_dir


@dataclass(frozen=True)
class Thresholds:
    """Score at or above which a copy is tagged, quarantined, rejected (None = never)."""

    tag: float | None = 5.0
    quarantine: float | None = 10.0
    reject: float | None = 15.0


@dataclass(frozen=True)
class SymbolInfo:
    weight: float
    description: str = ""


@dataclass(frozen=True)
class DomainPolicy:
    domain: str
    thresholds: Thresholds = Thresholds()
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    subject_tag: str = "[SPAM]"
    dmarc: str = "honour"  # honour | quarantine | score (what a DMARC p=reject does)
    rules: tuple[Any, ...] = ()  # compiled custom rules (filters.rules.filter)
    # report addresses: kind (spam, ham, virus) -> the local part taking users' reports
    report_addresses: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def report_kind(self, local: str) -> str | None:
        """Which kind of report mail to `local`@ this domain is, or None."""
        for kind, name in self.report_addresses.items():
            if name == local:
                return kind
        return None

    def weight(self, symbol: str) -> float:
        return self.weights.get(symbol, 0.0)

    def with_weights(self, overrides: Mapping[str, float]) -> DomainPolicy:
        merged = dict(self.weights)
        merged.update(overrides)
        return replace(self, weights=MappingProxyType(merged))


def load_symbol_catalogue(directory: Path | None = None) -> dict[str, SymbolInfo]:
    """Read every rules/symbols/*.toml: one table per symbol with weight and description."""
    directory = directory or rules_dir() / "symbols"
    catalogue: dict[str, SymbolInfo] = {}
    for path in sorted(directory.glob("*.toml")):
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        for name, entry in data.items():
            if name in catalogue:
                raise ValueError(f"{path}: symbol {name} is already defined in another file")
            catalogue[name] = SymbolInfo(
                weight=float(entry["weight"]), description=str(entry.get("description", ""))
            )
    return catalogue


def default_weights(catalogue: Mapping[str, SymbolInfo]) -> Mapping[str, float]:
    return MappingProxyType({name: info.weight for name, info in catalogue.items()})


def default_report_addresses(settings: Any) -> dict[str, str]:
    """The config file's [report] addresses: every domain's unless its rules say otherwise."""
    r = settings.report
    pairs = (("spam", r.spam_address), ("ham", r.ham_address), ("virus", r.virus_address))
    return {kind: local for kind, local in pairs if local}


class PolicyBook:
    """Answers "which policy applies to this domain?" for the pipeline.

    The global defaults come from the operator's settings; per-domain policy
    files (filters.rules.filter) replace them for their domain. The book is read on
    every message, so a reload swaps it atomically.
    """

    def __init__(self, default: DomainPolicy, domains: Mapping[str, DomainPolicy] | None = None):
        self.default = default
        self.domains = dict(domains or {})

    def for_domain(self, domain: str) -> DomainPolicy:
        domain = domain.lower()
        return self.domains.get(domain) or replace(self.default, domain=domain)

    @classmethod
    def from_settings(cls, settings: Any) -> PolicyBook:
        """Defaults from `gateway.config.Settings` and the shipped symbol catalogue."""
        p = settings.policy
        weights = dict(default_weights(load_symbol_catalogue()))
        weights.update(p.symbols)
        default = DomainPolicy(
            domain="*",
            thresholds=Thresholds(
                tag=p.thresholds.tag, quarantine=p.thresholds.quarantine, reject=p.thresholds.reject
            ),
            weights=MappingProxyType(weights),
            subject_tag=p.subject_tag,
            dmarc=p.dmarc,
            report_addresses=MappingProxyType(default_report_addresses(settings)),
        )
        return cls(default)
