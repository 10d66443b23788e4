"""From filter results to one recipient's Decision: a pure function.

Mailman's split: filters answer what they saw (symbols, forces, infections);
this chain decides. Order of precedence:

1. a TEMPFAIL force (a required lookup failed) -> 451, the client retries; an
   antivirus failure only counts for recipients whose antivirus is on;
2. viruses, per the mailbox's AvPolicy: "clean" replaces the infected parts
   (or quarantines the message when a virus is not in a separable part),
   "detect" only flags; both add X-Virus-* headers;
3. spam: the harshest of the score thresholds and the forced actions. An
   ALLOW force skips the score and other filters' forced verdicts, but not an
   explicit tag/quarantine/reject of the domain's own rules (whose harshest
   action already won inside the rules filter). abuse@ and postmaster@ are
   never quarantined or rejected for spam (RFC 2142): at most tagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from gateway.address import is_role_account
from gateway.domain_policy import DomainPolicy
from gateway.model import (
    Action,
    AvPolicy,
    Decision,
    FilterResult,
    Force,
    ForceKind,
    Infection,
    PartNotice,
    Rendering,
    Reply,
    ScoredSymbol,
    VirusOutcome,
)

ANTIVIRUS = "antivirus"  # the antivirus filter's name
RULES = "rules"  # the domain's custom rules: explicit actions an allow does not lift

_FORCED_ACTION = {
    ForceKind.TAG: Action.TAG,
    ForceKind.QUARANTINE: Action.QUARANTINE,
    ForceKind.REJECT: Action.REJECT,
}


def score_symbols(
    results: Mapping[str, FilterResult], policy: DomainPolicy
) -> tuple[ScoredSymbol, ...]:
    return tuple(
        ScoredSymbol(s.name, policy.weight(s.name) * s.factor, s.options)
        for result in results.values()
        for s in result.symbols
    )


def action_for_score(score: float, policy: DomainPolicy) -> Action:
    t = policy.thresholds
    for threshold, action in (
        (t.reject, Action.REJECT),
        (t.quarantine, Action.QUARANTINE),
        (t.tag, Action.TAG),
    ):
        if threshold is not None and score >= threshold:
            return action
    return Action.ACCEPT


def decide(
    rcpt: str,
    policy: DomainPolicy,
    results: Mapping[str, FilterResult],
    av: AvPolicy,
    outbound: bool = False,
) -> Decision:
    """`outbound`: our own user's mail to the internet; a virus in it is refused, not
    cleaned (a cleaned copy still tells the recipient that we sent a virus)."""
    symbols = score_symbols(results, policy)
    score = sum(s.score for s in symbols)
    forces = [
        (name, r.force) for name, r in results.items() if r.force is not None and name != ANTIVIRUS
    ]
    av_result = results.get(ANTIVIRUS)
    av_force = av_result.force if av_result is not None and av.enabled else None
    headers = [h for r in results.values() for h in r.headers]

    candidates = [f for _, f in forces] + ([av_force] if av_force else [])
    tempfails = [f for f in candidates if f.kind == ForceKind.TEMPFAIL]
    if tempfails:
        return Decision(
            rcpt,
            Action.TEMPFAIL,
            score,
            symbols,
            reasons=tuple(f.reason for f in tempfails),
            reply=Reply(451, "4.3.0", "Temporary failure while checking the message, try later"),
        )

    virus = _virus_outcome(av_result, av)
    reasons: list[str] = []
    action = Action.ACCEPT
    av_reply: Reply | None = None
    replace_parts: tuple[PartNotice, ...] = ()
    if virus is not None and av_result is not None:
        # a part clamd could not scan (too large, over its limits): [clamav] on_unscannable
        held = _FORCED_ACTION.get(av_force.kind) if av_force and virus.mode == "clean" else None
        if held is not None and av_force is not None:
            action = held
            reasons.append(f"{av_force.source}: {av_force.reason}")
            if held == Action.REJECT:
                av_reply = Reply(550, "5.7.1", av_force.reply_text or "Message refused")
            virus = replace(virus, cleaned=False)
        headers.extend(virus_headers(virus, av_result))
        if virus.viruses:
            reasons.append("virus: " + ", ".join(virus.viruses))
            if outbound and av.enabled:
                action = Action.REJECT
                names = ", ".join(virus.viruses)
                av_reply = Reply(550, "5.7.1", f"Virus found ({names}): message not sent")
                virus = replace(virus, cleaned=False)
            elif virus.mode == "clean" and held is None:
                if virus.cleaned:
                    replace_parts = tuple(
                        _notice(i, virus.original_kept) for i in av_result.infections
                    )
                else:
                    action = Action.QUARANTINE
                    reasons.append("virus could not be separated from the message")

    spam_action, spam_reasons, reply = _spam_action(rcpt, score, forces, policy)
    spam = spam_action != Action.ACCEPT
    reasons.extend(spam_reasons)
    if spam_action.severity > action.severity:
        action = spam_action
    if action == Action.REJECT and reply is None:
        reply = av_reply
    headers.extend(spam_headers(score, spam, policy, symbols))
    subject_tag = policy.subject_tag if action == Action.TAG and policy.subject_tag else None
    if action != Action.REJECT:
        reply = None
    return Decision(
        rcpt,
        action,
        score,
        symbols,
        reasons=tuple(reasons),
        reply=reply,
        rendering=Rendering(tuple(headers), subject_tag, replace_parts),
        virus=virus,
        spam=spam,
    )


def _spam_action(
    rcpt: str, score: float, forces: list[tuple[str, Force]], policy: DomainPolicy
) -> tuple[Action, list[str], Reply | None]:
    allow = next((f for _, f in forces if f.kind == ForceKind.ALLOW), None)
    reasons: list[str] = []
    if allow is not None:
        reasons.append(f"allowed: {allow.reason}")
        action = Action.ACCEPT
        forces = [(name, f) for name, f in forces if name == RULES]
    else:
        action = action_for_score(score, policy)
        if action != Action.ACCEPT:
            reasons.append(f"score {score:.2f}")
    reply = None
    for _, force in forces:
        forced = _FORCED_ACTION.get(force.kind)
        if forced is None:
            continue
        reasons.append(f"{force.source}: {force.reason}")
        if forced.severity > action.severity:
            action = forced
        if forced == Action.REJECT and reply is None:
            reply = Reply(550, "5.7.1", force.reply_text or "Message refused by policy")
    if action == Action.REJECT and reply is None:
        reply = Reply(550, "5.7.1", "Message refused as spam")
    if is_role_account(rcpt) and action.severity > Action.TAG.severity:
        reasons.append(f"{rcpt} is a role account: tagged, never refused")
        action, reply = Action.TAG, None
    return action, reasons, reply


def _virus_outcome(result: FilterResult | None, av: AvPolicy) -> VirusOutcome | None:
    if result is None:
        return None
    if not av.enabled or result.error is not None:
        return VirusOutcome(scanned=False, mode=av.mode)
    viruses = tuple(dict.fromkeys(i.virus for i in result.infections))
    separable = all(i.part_id for i in result.infections)
    cleaned = bool(viruses) and av.mode == "clean" and separable
    return VirusOutcome(
        scanned=True,
        viruses=viruses,
        mode=av.mode,
        cleaned=cleaned,
        original_kept=bool(viruses) and av.keep_original,
    )


def _notice(infection: Infection, original_kept: bool) -> PartNotice:
    name = f" ({infection.filename})" if infection.filename else ""
    what = "The uuencoded file" if infection.uuencoded else "This attachment"
    text = (
        f"{what}{name} contained the virus {infection.virus} and was removed by the mail gateway."
    )
    if original_kept:
        text += (
            " The original is kept in quarantine as {quarantine_id};"
            " ask abuse@ staff if you need it."
        )
    block = infection.filename if infection.uuencoded else None
    return PartNotice(infection.part_id, text + "\n", block)


def virus_headers(virus: VirusOutcome, result: FilterResult | None) -> list[tuple[str, str]]:
    if not virus.scanned:
        return []
    facts = result.facts if result else {}
    engine = str(facts.get("engine", "ClamAV"))
    unscannable = [str(u) for u in facts.get("unscannable", ())]
    if not virus.viruses:
        status = "Not fully scanned (" + "; ".join(unscannable) + ")" if unscannable else "Clean"
    elif virus.cleaned:
        status = "Cleaned (" + ", ".join(virus.viruses) + ")"
    else:
        status = "Infected (" + ", ".join(virus.viruses) + ")"
    return [("X-Virus-Scanned", f"mailwarden using {engine}"), ("X-Virus-Status", status)]


def spam_headers(
    score: float, spam: bool, policy: DomainPolicy, symbols: tuple[ScoredSymbol, ...]
) -> list[tuple[str, str]]:
    required = policy.thresholds.tag
    tests = ",".join(sorted({s.name for s in symbols if s.score}))
    status = f"{'Yes' if spam else 'No'}, score={score:.2f}"
    if required is not None:
        status += f" required={required:.2f}"
    status += f" tests={tests or 'none'}"
    return [
        ("X-Spam-Flag", "YES" if spam else "NO"),
        ("X-Spam-Score", f"{score:.2f}"),
        ("X-Spam-Level", spam_level(score)),
        ("X-Spam-Status", status),
    ]


def spam_level(score: float) -> str:
    """SpamAssassin's X-Spam-Level: one star per whole point (at most 50), for the
    Sieve and procmail recipes that match on `*****`."""
    return "*" * min(50, max(0, int(score)))
