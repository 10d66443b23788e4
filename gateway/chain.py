"""The filter chain, in evaluation order, built from the settings.

Order matters only for evaluation: a filter may read the results of those
before it (custom rules come last). Lookups all run concurrently.
"""

from __future__ import annotations

from filters.base import Filter
from filters.message_checks import MessageChecks
from filters.rules import RulesFilter
from gateway.config import Settings


def build_chain(settings: Settings) -> list[Filter]:
    chain: list[Filter] = [MessageChecks()]
    chain.append(RulesFilter())  # last: rules may test what every other filter found
    return chain
