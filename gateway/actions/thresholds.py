"""A domain's spam thresholds: shown with the operator's defaults, set by its admins.

The thresholds are the `thresholds:` key of the domain's rules in the database
(docs/rules.md), so a change is a new rules version: kept with who and when, rolled
back like any other, and picked up by every node within seconds. A key the domain
does not set follows `[policy.thresholds]` of the config file. Audited as
`thresholds.set` (before and after).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Engine

from filters.rules.edit import flow_number
from filters.rules.lang import THRESHOLD_KEYS
from gateway.actions import rule_keys
from gateway.actions.common import Actor, BadInput
from gateway.pipeline.rules_db import SettingsChecker
from gateway.store import rules_store

LIMIT = 1000.0  # as the rule language allows
DEFAULT = "default"  # a key the domain leaves to the operator


def _defaults(check: SettingsChecker) -> dict[str, float | None]:
    t = check.settings.policy.thresholds
    return {"tag": t.tag, "quarantine": t.quarantine, "reject": t.reject}


def show(engine: Engine, actor: Actor, check: SettingsChecker, domain: str) -> dict[str, Any]:
    name = rule_keys.settings_domain(actor, domain)
    found = rules_store.current(engine, name)
    own = rule_keys.own(check, name, found, "thresholds")
    defaults = _defaults(check)
    return {
        "domain": name,
        "set": own,
        "defaults": defaults,
        "effective": {k: own[k] if k in own else defaults[k] for k in THRESHOLD_KEYS},
        "version": None if found is None else found.version,
        "read_only": check.read_only(name),
    }


NEVER = "never"  # a threshold typed as this: the domain never takes that action


def typed(key: str, text: str) -> float | None:
    """A threshold as a person types it in the console or on the command line: a
    number, or `never` (None)."""
    if text.strip().lower() == NEVER:
        return None
    try:
        return float(text)
    except ValueError:
        raise BadInput(
            f"{key}: {text!r} is not a number (or never, or empty for the default)"
        ) from None


def checked(values: Mapping[str, Any], defaults: Mapping[str, float | None]) -> dict:
    """The keys given (number, or None for never), each in range and rising from tag to
    reject together with the defaults of the keys not given; BadInput naming the key."""
    unknown = sorted(set(values) - set(THRESHOLD_KEYS))
    if unknown:
        raise BadInput(f"{', '.join(unknown)}: not a threshold (tag, quarantine, reject)")
    own: dict[str, float | None] = {}
    for key in THRESHOLD_KEYS:
        if key not in values:
            continue
        value = values[key]
        if value is None:
            own[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise BadInput(f"{key}: a number, or never (null)")
        if not -LIMIT <= value <= LIMIT:
            raise BadInput(f"{key}: between {-LIMIT:g} and {LIMIT:g}, not {value:g}")
        own[key] = round(float(value), 4)
    effective = [(k, own[k] if k in own else defaults[k], k not in own) for k in THRESHOLD_KEYS]
    rising = [(k, v, d) for k, v, d in effective if v is not None]
    for (low_key, low, low_d), (high_key, high, high_d) in itertools.pairwise(rising):
        if low > high:
            raise BadInput(
                f"{low_key} ({low:g}{_by(low_d)}) is above {high_key} ({high:g}{_by(high_d)}):"
                " thresholds must rise from tag to quarantine to reject"
            )
    return own


def _by(default: bool) -> str:
    return ", the operator's default" if default else ""


def put(
    engine: Engine,
    actor: Actor,
    check: SettingsChecker,
    domain: str,
    values: Mapping[str, Any],
    *,
    changed: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Set the domain's thresholds: `values` holds the keys it sets (a number, or None for
    never); a key left out follows the operator's default. Saved as a new rules version."""
    name = rule_keys.settings_domain(actor, domain)
    found = rules_store.current(engine, name)
    before = rule_keys.own(check, name, found, "thresholds")
    own = checked(values, _defaults(check))
    line = None
    if own:
        line = "thresholds: {" + ", ".join(f"{k}: {flow_number(v)}" for k, v in own.items()) + "}"
    summary = ", ".join(
        f"{k} {'default' if k not in own else flow_number(own[k]).replace('null', 'never')}"
        for k in THRESHOLD_KEYS
    )
    rule_keys.save(
        engine,
        actor,
        check,
        name,
        found,
        key="thresholds",
        line=line,
        summary=summary,
        before=before,
        after=own,
    )
    if changed is not None:
        changed()
    return show(engine, actor, check, name)
