"""policy.decide: pure, from literal filter results to one recipient's decision."""

from __future__ import annotations

from types import MappingProxyType

from gateway.domain_policy import DomainPolicy, Thresholds
from gateway.model import (
    Action,
    AvPolicy,
    FilterResult,
    Force,
    ForceKind,
    Infection,
    Symbol,
)
from gateway.pipeline.decide import decide

POLICY = DomainPolicy(
    "example.test",
    Thresholds(tag=5.0, quarantine=10.0, reject=15.0),
    MappingProxyType({"A": 3.0, "B": 4.0, "CLASSIFIER_SPAM": 8.0, "VIRUS_FOUND": 0.0}),
)


def result(*names: str, factor: float = 1.0, **kw) -> FilterResult:
    return FilterResult(symbols=tuple(Symbol(n, factor=factor) for n in names), **kw)


def test_score_is_weights_times_factor_and_thresholds_pick_the_action():
    d = decide("bob@example.test", POLICY, {"x": result("A", "B")}, AvPolicy())
    assert d.score == 7.0 and d.action == Action.TAG and d.spam
    assert d.rendering.subject_tag == "[SPAM]"
    assert ("X-Spam-Flag", "YES") in d.rendering.add_headers
    d = decide("bob@example.test", POLICY, {"c": result("CLASSIFIER_SPAM", factor=0.5)}, AvPolicy())
    assert d.score == 4.0 and d.action == Action.ACCEPT and not d.spam
    d = decide("bob@example.test", POLICY, {"x": result("A", "CLASSIFIER_SPAM")}, AvPolicy())
    assert d.score == 11.0 and d.action == Action.QUARANTINE
    unknown = decide("bob@example.test", POLICY, {"x": result("NOT_IN_CATALOGUE")}, AvPolicy())
    assert unknown.score == 0.0 and unknown.symbols[0].name == "NOT_IN_CATALOGUE"


def test_forced_reject_carries_its_text_and_beats_a_low_score():
    force = Force(ForceKind.REJECT, "no executables", "rules", "executables are not accepted")
    d = decide("bob@example.test", POLICY, {"rules": result(force=force)}, AvPolicy())
    assert d.action == Action.REJECT
    assert str(d.reply) == "550 5.7.1 executables are not accepted"


def test_allow_skips_spam_scoring_but_not_tempfail():
    allow = Force(ForceKind.ALLOW, "partner", "rules")
    spammy = {"x": result("A", "B", "CLASSIFIER_SPAM"), "rules": result(force=allow)}
    d = decide("bob@example.test", POLICY, spammy, AvPolicy())
    assert d.action == Action.ACCEPT and not d.spam and d.score == 15.0
    broken = dict(spammy, dns=result(force=Force(ForceKind.TEMPFAIL, "timeout", "dns")))
    assert decide("bob@example.test", POLICY, broken, AvPolicy()).action == Action.TEMPFAIL


def test_role_accounts_are_never_refused_for_spam():
    results = {"x": result("A", "B", "CLASSIFIER_SPAM")}
    for rcpt in ("abuse@example.test", "Postmaster@example.test"):
        d = decide(rcpt, POLICY, results, AvPolicy())
        assert d.action == Action.TAG and d.reply is None


def test_virus_clean_mode_replaces_infected_parts_and_keeps_original():
    av = result(
        "VIRUS_FOUND",
        infections=(Infection("2", "Eicar-Signature", "a.exe"),),
        facts={"engine": "ClamAV 1.4"},
    )
    d = decide(
        "bob@example.test",
        POLICY,
        {"antivirus": av},
        AvPolicy(enabled=True, mode="clean", keep_original=True),
    )
    assert d.action == Action.ACCEPT
    assert d.virus.cleaned and d.virus.original_kept
    assert [p.part_id for p in d.rendering.replace_parts] == ["2"]
    assert "Eicar-Signature" in d.rendering.replace_parts[0].text
    assert ("X-Virus-Status", "Cleaned (Eicar-Signature)") in d.rendering.add_headers


def test_virus_detect_mode_flags_only_and_off_ignores():
    av = result("VIRUS_FOUND", infections=(Infection("1", "Eicar-Signature"),))
    detect = decide("b@example.test", POLICY, {"antivirus": av}, AvPolicy(True, "detect", False))
    assert detect.action == Action.ACCEPT and not detect.rendering.replace_parts
    assert ("X-Virus-Status", "Infected (Eicar-Signature)") in detect.rendering.add_headers
    off = decide("b@example.test", POLICY, {"antivirus": av}, AvPolicy(enabled=False))
    assert off.virus is not None and not off.virus.scanned
    assert not any(h[0].startswith("X-Virus") for h in off.rendering.add_headers)


def test_virus_in_the_whole_message_only_is_quarantined_in_clean_mode():
    av = result("VIRUS_FOUND", infections=(Infection("", "Eicar-Signature"),))
    d = decide("bob@example.test", POLICY, {"antivirus": av}, AvPolicy())
    assert d.action == Action.QUARANTINE and not d.virus.cleaned


def test_antivirus_failure_tempfails_only_where_antivirus_is_on():
    failed = result(error="clamd down", force=Force(ForceKind.TEMPFAIL, "down", "antivirus"))
    on = decide("b@example.test", POLICY, {"antivirus": failed}, AvPolicy())
    off = decide("b@example.test", POLICY, {"antivirus": failed}, AvPolicy(enabled=False))
    assert on.action == Action.TEMPFAIL and str(on.reply).startswith("451 4.3.0")
    assert off.action == Action.ACCEPT


def test_an_allow_does_not_lift_the_domains_own_reject_rule():
    allow = Force(ForceKind.ALLOW, "sender on the allow list", "lists")
    reject = Force(ForceKind.REJECT, "rule no-exe", "rules:no-exe", "no executables here")
    dmarc = Force(ForceKind.REJECT, "DMARC p=reject", "auth", "DMARC policy")
    d = decide(
        "bob@example.test",
        POLICY,
        {"auth": result(force=dmarc), "lists": result(force=allow), "rules": result(force=reject)},
        AvPolicy(),
    )
    assert d.action == Action.REJECT and str(d.reply) == "550 5.7.1 no executables here"
    lifted = decide(
        "bob@example.test",
        POLICY,
        {"auth": result(force=dmarc), "lists": result(force=allow)},
        AvPolicy(),
    )
    assert lifted.action == Action.ACCEPT
