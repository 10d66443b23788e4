"""The filter chain, in evaluation order, and the SMTP-time checks, built from settings.

Order matters only for evaluation: a filter may read the results of those
before it (custom rules come last). Lookups all run concurrently.
"""

from __future__ import annotations

from filters.antivirus import Antivirus
from filters.auth import AuthFilter
from filters.base import Filter
from filters.blocklist.dnsbl import BlocklistFilter
from filters.blocklist.session import BlocklistSessionCheck
from filters.locallists import LocalListsFilter
from filters.message_checks import MessageChecks
from filters.rules.filter import RulesFilter
from filters.session import SessionCheck
from gateway.adapters import Ports
from gateway.config import ConfigError, Settings

FILTER_NAMES = ("message", "auth", "blocklist", "lists", "rules", "antivirus", "classifier")


def build_chain(settings: Settings) -> list[Filter]:
    """Every configured filter except those named in [pipeline] disable."""
    disabled = set(settings.pipeline.disable)
    unknown = sorted(disabled - set(FILTER_NAMES))
    if unknown:
        raise ConfigError(
            f"pipeline.disable: unknown filter {unknown[0]!r} (known: {', '.join(FILTER_NAMES)})"
        )
    return [f for f in _all_filters(settings) if f.name not in disabled]


def _all_filters(settings: Settings) -> list[Filter]:
    chain: list[Filter] = [
        MessageChecks(),
        AuthFilter(settings.smtp.hostname, max_seconds=settings.pipeline.budget),
    ]
    if settings.dnsbl or settings.uribl:
        chain.append(BlocklistFilter(settings))
    chain.append(LocalListsFilter())
    if settings.clamav is not None:
        chain.append(Antivirus(settings.clamav))
    if settings.classifier.enabled and "classifier" not in settings.pipeline.disable:
        from filters.classifier import ClassifierFilter  # scikit-learn: ~1 s to import

        classifier = ClassifierFilter.from_settings(settings)  # loads the model once
        if classifier is not None:
            chain.append(classifier)
    chain.append(RulesFilter())  # last: rules may test what every other filter found
    return chain


def build_session_checks(settings: Settings, ports: Ports) -> list[SessionCheck]:
    """Checks made during the SMTP dialogue, in order (relay control comes before them)."""
    return [BlocklistSessionCheck(settings, ports)]
