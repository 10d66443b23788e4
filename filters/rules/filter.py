"""The custom-rules filter: runs the recipient domain's own rules (filters.rules.lang).

It comes late in the chain so conditions can test what earlier filters found
(scope.results) and the classifier's probability. Rules carry no weights in code:
a rule's `score` is the weight of its symbol RULE_<NAME> in that domain's policy.

When several fired rules demand an action, the harshest wins (reject, then
quarantine, then tag, then allow): `allow` means "this is not spam", and must not
undo a rule that refuses executables. Antivirus never depends on these rules.
"""

from __future__ import annotations

from typing import Any

from filters.base import NoLookup, Scope
from filters.rules.lang import CompiledRule
from filters.rules.view import MessageView
from gateway.model import FilterResult, Force, ForceKind, MessageContext, Symbol

NAME = "rules"

_RANK = {ForceKind.ALLOW: 0, ForceKind.TAG: 1, ForceKind.QUARANTINE: 2, ForceKind.REJECT: 3}


def default_reject_text(rule: CompiledRule) -> str:
    return f"message refused by the recipient domain's policy (rule {rule.name})"


def run_rules(ctx: MessageContext, scope: Scope) -> tuple[list[CompiledRule], FilterResult]:
    """The rules of scope.policy that fire, in file order, and what they add up to."""
    rules: tuple[CompiledRule, ...] = tuple(scope.policy.rules)
    if not rules:
        return [], FilterResult()
    view = MessageView(ctx, scope.domain, scope.results)
    fired: list[CompiledRule] = []
    symbols: list[Symbol] = []
    force: Force | None = None
    for rule in rules:
        if not rule.condition.test(view):
            continue
        fired.append(rule)
        symbols.append(Symbol(rule.symbol, (rule.name,)))
        view.symbols.add(rule.symbol)
        if rule.then.symbol:
            symbols.append(Symbol(rule.then.symbol, (rule.name,)))
            view.symbols.add(rule.then.symbol)
        kind = rule.then.action
        if kind is not None and (force is None or _RANK[kind] > _RANK[force.kind]):
            reply = None
            if kind is ForceKind.REJECT:
                reply = rule.then.text or default_reject_text(rule)
            force = Force(
                kind, reason=f"rule {rule.name}", source=f"{NAME}:{rule.name}", reply_text=reply
            )
    facts: dict[str, Any] = {"fired": [r.name for r in fired]}
    if force is not None:
        facts["action"] = str(force.kind)
    return fired, FilterResult(symbols=tuple(symbols), force=force, facts=facts)


class RulesFilter(NoLookup):
    """Per-domain custom rules; no I/O, the compiled rules live in the DomainPolicy."""

    name = NAME

    def evaluate(self, ctx: MessageContext, evidence: Any, scope: Scope) -> FilterResult:
        return run_rules(ctx, scope)[1]
