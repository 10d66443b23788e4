"""Local block and allow lists in the pipeline (gateway.lists.match for the rules).

At RCPT time the session check refuses blocked sources outright; here the same
lists become symbols for what got through (an entry added mid-session, a
recipient the check never refuses such as abuse@) and an allow entry becomes
Force(ALLOW): spam scoring is skipped, antivirus never is.
"""

from __future__ import annotations

from filters.base import Scope
from gateway.adapters import Ports
from gateway.lists.match import ListSnapshot
from gateway.model import FilterResult, Force, ForceKind, MessageContext, OnError, Symbol

NAME = "lists"


class LocalListsFilter:
    name = NAME
    on_error = OnError.CONTINUE

    async def lookup(self, ctx: MessageContext, ports: Ports) -> ListSnapshot | None:
        """The node's current snapshot (in memory; read from the database only the first
        time, e.g. for `mailwarden scan`, which runs no background sync)."""
        store = ports.lists
        if store is None:
            return None
        if store.loaded_at is None:
            await store.reload()
        return store.snapshot

    def evaluate(
        self, ctx: MessageContext, evidence: ListSnapshot | None, scope: Scope
    ) -> FilterResult:
        if evidence is None:
            return FilterResult()
        env = ctx.envelope
        verdict = evidence.judge(
            scope.domain, ctx.received_at, env.client_ip, env.mail_from, env.helo
        )
        if verdict is None:
            return FilterResult()
        entry = verdict.entry
        where = f"list of {entry.domain}" if entry.domain else "global list"
        options = (entry.describe(), where, *((entry.source,) if entry.source else ()))
        facts = {
            "list": verdict.list,
            "kind": entry.kind,
            "value": entry.value,
            "domain": entry.domain,
            "reason": entry.reason,
            "source": entry.source,
        }
        if verdict.list == "allow":
            force = Force(ForceKind.ALLOW, f"{entry.describe()} is on the allow {where}", NAME)
            return FilterResult(
                symbols=(Symbol("LOCAL_ALLOWLIST", options),), force=force, facts=facts
            )
        return FilterResult(symbols=(Symbol("LOCAL_BLOCKLIST", options),), facts=facts)
