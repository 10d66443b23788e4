"""gateway.pipeline.decide.decide with the antivirus filter's result and each mailbox's AvPolicy."""

from __future__ import annotations

from gateway.domain_policy import DomainPolicy
from gateway.model import Action, AvPolicy, FilterResult, Force, ForceKind, Infection, Symbol
from gateway.pipeline.decide import ANTIVIRUS, decide

POLICY = DomainPolicy("example.test")
FACTS = {"engine": "ClamAV 1.4.6/27002/Sun Nov 1 01:22:31 2026", "db_version": "x"}
INFECTED = FilterResult(
    symbols=(Symbol("VIRUS_FOUND", ("Eicar",)),),
    infections=(Infection("2", "Eicar", "a.doc"),),
    facts=FACTS,
)
CLEAN = FilterResult(facts=FACTS)
UNSEPARABLE = FilterResult(infections=(Infection("", "Worm.X"),), facts=FACTS)
TOO_LARGE = FilterResult(
    symbols=(Symbol("AV_PART_TOO_LARGE", ("2",)),),
    force=Force(ForceKind.QUARANTINE, "not fully scanned (2: too large)", ANTIVIRUS),
    facts={**FACTS, "unscannable": ["2: too large"]},
)
DOWN = FilterResult(
    symbols=(Symbol("AV_SCAN_ERROR", ("down",)),),
    force=Force(ForceKind.TEMPFAIL, "virus scanner: down", ANTIVIRUS),
    error="down",
)


def headers(decision):
    return dict(decision.rendering.add_headers)


def test_clean_mode_replaces_the_part_and_keeps_the_original():
    d = decide("bob@example.test", POLICY, {ANTIVIRUS: INFECTED}, AvPolicy())
    assert d.action == Action.ACCEPT
    assert d.virus.cleaned and d.virus.original_kept
    [notice] = d.rendering.replace_parts
    assert notice.part_id == "2"
    assert "Eicar" in notice.text and "a.doc" in notice.text and "{quarantine_id}" in notice.text
    assert headers(d)["X-Virus-Status"] == "Cleaned (Eicar)"
    assert headers(d)["X-Virus-Scanned"].startswith("mailwarden using ClamAV 1.4.6/27002")
    assert not d.spam


def test_clean_mode_without_keeping_the_original():
    d = decide("bob@example.test", POLICY, {ANTIVIRUS: INFECTED}, AvPolicy(keep_original=False))
    assert d.virus.cleaned and not d.virus.original_kept
    assert "{quarantine_id}" not in d.rendering.replace_parts[0].text


def test_detect_mode_delivers_unchanged_with_headers():
    d = decide("bob@example.test", POLICY, {ANTIVIRUS: INFECTED}, AvPolicy(mode="detect"))
    assert d.action == Action.ACCEPT
    assert d.rendering.replace_parts == ()
    assert headers(d)["X-Virus-Status"] == "Infected (Eicar)"
    assert not d.virus.cleaned


def test_antivirus_off_has_no_consequence():
    d = decide("bob@example.test", POLICY, {ANTIVIRUS: INFECTED}, AvPolicy(enabled=False))
    assert d.action == Action.ACCEPT
    assert d.rendering.replace_parts == ()
    assert "X-Virus-Status" not in headers(d)
    assert not d.virus.scanned


def test_virus_not_in_a_separable_part_is_quarantined_in_clean_mode():
    d = decide("bob@example.test", POLICY, {ANTIVIRUS: UNSEPARABLE}, AvPolicy())
    assert d.action == Action.QUARANTINE
    assert not d.virus.cleaned
    assert not d.spam


def test_unscannable_part_is_held_in_clean_mode_and_flagged_in_detect_mode():
    held = decide("bob@example.test", POLICY, {ANTIVIRUS: TOO_LARGE}, AvPolicy())
    assert held.action == Action.QUARANTINE
    assert not held.spam
    assert any("too large" in r for r in held.reasons)
    flagged = decide("bob@example.test", POLICY, {ANTIVIRUS: TOO_LARGE}, AvPolicy(mode="detect"))
    assert flagged.action == Action.ACCEPT
    assert headers(flagged)["X-Virus-Status"] == "Not fully scanned (2: too large)"
    off = decide("bob@example.test", POLICY, {ANTIVIRUS: TOO_LARGE}, AvPolicy(enabled=False))
    assert off.action == Action.ACCEPT


def test_unscannable_reject_gets_a_reply_and_role_accounts_are_not_exempt():
    reject = FilterResult(
        force=Force(
            ForceKind.REJECT, "not fully scanned", ANTIVIRUS, "Message could not be fully scanned"
        ),
        facts={**FACTS, "unscannable": ["2: MaxScanSize"]},
    )
    d = decide("abuse@example.test", POLICY, {ANTIVIRUS: reject}, AvPolicy())
    assert d.action == Action.REJECT
    assert d.reply.code == 550 and "fully scanned" in d.reply.text


def test_scanner_down_tempfails_only_where_antivirus_is_on():
    on = decide("bob@example.test", POLICY, {ANTIVIRUS: DOWN}, AvPolicy())
    assert on.action == Action.TEMPFAIL and on.reply.code == 451
    off = decide("eve@example.test", POLICY, {ANTIVIRUS: DOWN}, AvPolicy(enabled=False))
    assert off.action == Action.ACCEPT


def test_clean_message_gets_clean_status():
    d = decide("bob@example.test", POLICY, {ANTIVIRUS: CLEAN}, AvPolicy())
    assert headers(d)["X-Virus-Status"] == "Clean"
    assert d.virus.scanned and d.virus.viruses == ()
