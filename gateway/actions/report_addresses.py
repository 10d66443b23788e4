"""A domain's report addresses (spam-report@ and the like): shown with the config
file's defaults, set by its admins and operators.

They are the `report_addresses:` key of the domain's rules in the database
(docs/rules.md), so a change is a new rules version: kept with who and when, rolled
back like any other, and followed by every node within seconds. A kind the domain
does not set follows `[report]` of the config file. Audited as `report_addresses.set`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Engine

from filters.rules.lang import REPORT_KINDS, report_local_problem
from gateway.actions import rule_keys
from gateway.actions.common import Actor, BadInput
from gateway.domain_policy import default_report_addresses
from gateway.pipeline.rules_db import SettingsChecker
from gateway.store import rules_store


def show(engine: Engine, actor: Actor, check: SettingsChecker, domain: str) -> dict[str, Any]:
    name = rule_keys.settings_domain(actor, domain)
    found = rules_store.current(engine, name)
    own = rule_keys.own(check, name, found, "report_addresses")
    defaults = default_report_addresses(check.settings)
    effective = {}
    for kind in REPORT_KINDS:
        local = own[kind] if kind in own else defaults.get(kind)
        effective[kind] = None if local is None else f"{local}@{name}"
    return {
        "domain": name,
        "set": own,
        "defaults": {k: defaults.get(k) for k in REPORT_KINDS},
        "effective": effective,
        "version": None if found is None else found.version,
        "read_only": check.read_only(name),
    }


NONE = "none"  # a report address typed as this: the domain takes no such reports


def typed(kind: str, text: str) -> str | None:
    """A report address as a person types it: a local part, or `none` (None)."""
    return None if text.strip().lower() == NONE else text.strip()


def checked(values: Mapping[str, Any], defaults: Mapping[str, str]) -> dict[str, str | None]:
    """The kinds given (a local part, or None for off); BadInput naming the kind."""
    unknown = sorted(set(values) - set(REPORT_KINDS))
    if unknown:
        raise BadInput(f"{', '.join(unknown)}: not a kind of report (spam, ham, virus)")
    own: dict[str, str | None] = {}
    for kind in REPORT_KINDS:
        if kind not in values:
            continue
        value = values[kind]
        if value is None:
            own[kind] = None
            continue
        if not isinstance(value, str):
            raise BadInput(f"{kind}: a local part such as spam-report, or null for none")
        problem = report_local_problem(value)
        if problem is not None:
            raise BadInput(f"{kind}: {problem}")
        own[kind] = value.strip().lower()
    effective = {k: own[k] if k in own else defaults.get(k) for k in REPORT_KINDS}
    taken: dict[str, str] = {}
    for kind, local in effective.items():
        if local is None:
            continue
        if local in taken:
            raise BadInput(f"{kind}: {local}@ already takes the {taken[local]} reports")
        taken[local] = kind
    return own


def put(
    engine: Engine,
    actor: Actor,
    check: SettingsChecker,
    domain: str,
    values: Mapping[str, Any],
    *,
    changed: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Set which local parts of the domain take users' reports: `values` holds the kinds
    it sets (a local part, or None for none); a kind left out follows [report]."""
    name = rule_keys.settings_domain(actor, domain)
    found = rules_store.current(engine, name)
    before = rule_keys.own(check, name, found, "report_addresses")
    own = checked(values, default_report_addresses(check.settings))
    line = None
    if own:
        pairs = ", ".join(f"{k}: {'null' if v is None else json.dumps(v)}" for k, v in own.items())
        line = "report_addresses: {" + pairs + "}"
    summary = ", ".join(
        f"{k} {'default' if k not in own else own[k] or 'none'}" for k in REPORT_KINDS
    )
    rule_keys.save(
        engine,
        actor,
        check,
        name,
        found,
        key="report_addresses",
        line=line,
        summary=summary,
        before=before,
        after=own,
    )
    if changed is not None:
        changed()
    return show(engine, actor, check, name)
