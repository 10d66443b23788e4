"""filters.antivirus.evaluate_scans: scan outcomes -> symbols, infections, forces (pure)."""

from __future__ import annotations

from datetime import datetime

from filters.antivirus import AvEvidence, Scan, Target, classify, evaluate_scans, safe_filename
from gateway.adapters.clamd import ClamdVersion
from gateway.config import ClamavSettings
from gateway.model import ForceKind, Infection

SETTINGS = ClamavSettings(socket="/run/clamd.ctl")
VERSION = ClamdVersion("1.4.6", 27002, datetime(2026, 11, 1).astimezone(), "ClamAV 1.4.6/27002/x")


def scan(part_id, kind="part", status="clean", virus=None, filename=None, size=10):
    return Scan(Target(part_id, kind, filename), status, virus, size)


def evidence(*scans, separable=True, error=None):
    return AvEvidence(scans=scans, version=VERSION, separable=separable, error=error)


def names(result):
    return {s.name: s.options for s in result.symbols}


def test_clean_message():
    result = evaluate_scans(evidence(scan("1"), scan("2"), scan("", "message")), SETTINGS)
    assert result.symbols == ()
    assert result.infections == ()
    assert result.force is None
    assert result.facts["db_version"] == "ClamAV 1.4.6/27002/x"
    assert result.facts["scans"] == 3


def test_infected_part_is_named_with_its_file():
    result = evaluate_scans(
        evidence(
            scan("1"),
            scan("2", status="infected", virus="Eicar", filename="a.doc"),
            scan("", "message", status="infected", virus="Eicar"),
        ),
        SETTINGS,
    )
    assert result.infections == (Infection("2", "Eicar", "a.doc"),)
    assert names(result) == {"VIRUS_FOUND": ("Eicar",)}
    assert result.force is None  # what happens is the mailbox's AvPolicy's business


def test_virus_only_clamd_finds_in_the_whole_message_is_not_separable():
    result = evaluate_scans(
        evidence(scan("1"), scan("", "message", status="infected", virus="Worm.X")), SETTINGS
    )
    assert result.infections == (Infection("", "Worm.X"),)


def test_parts_that_cannot_be_edited_make_every_infection_whole_message():
    result = evaluate_scans(
        evidence(scan("2", status="infected", virus="Eicar"), separable=False), SETTINGS
    )
    assert result.infections == (Infection("", "Eicar"),)


def test_uuencoded_block_and_raw_scan_report_their_part():
    result = evaluate_scans(
        evidence(
            scan("1", "uuencoded", status="infected", virus="Eicar", filename="x.com"),
            scan("2", "raw", status="clean"),
        ),
        SETTINGS,
    )
    # the block, not the text around it: clean mode removes only the block
    assert result.infections == (Infection("1", "Eicar", "x.com", uuencoded=True),)
    assert names(result)["AV_PART_SCANNED_RAW"] == ("2",)


def test_part_too_large_is_never_passed_silently():
    result = evaluate_scans(evidence(scan("1"), scan("2", status="too_large")), SETTINGS)
    assert names(result)["AV_PART_TOO_LARGE"] == ("2",)
    assert result.force.kind == ForceKind.QUARANTINE
    assert result.facts["unscannable"] == ["2: too large"]
    reject = evaluate_scans(
        evidence(scan("2", status="too_large")),
        SETTINGS.model_copy(update={"on_unscannable": "reject"}),
    )
    assert reject.force.kind == ForceKind.REJECT
    accept = evaluate_scans(
        evidence(scan("2", status="too_large")),
        SETTINGS.model_copy(update={"on_unscannable": "accept"}),
    )
    assert accept.force is None
    assert "AV_PART_TOO_LARGE" in names(accept)


def test_archive_limits_in_a_part_hold_the_message_but_not_in_the_whole_message():
    bomb = evaluate_scans(
        evidence(scan("2", status="infected", virus="Heuristics.Limits.Exceeded.MaxScanSize")),
        SETTINGS,
    )
    assert names(bomb)["AV_LIMITS_EXCEEDED"] == ("2: MaxScanSize",)
    assert bomb.infections == ()
    assert bomb.force.kind == ForceKind.QUARANTINE
    wrapped = evaluate_scans(
        evidence(
            scan("2", status="infected", virus="Eicar"),
            scan("", "message", status="infected", virus="Heuristics.Limits.Exceeded.MaxRecursion"),
        ),
        SETTINGS,
    )
    assert wrapped.force is None  # the parts were each scanned completely
    assert wrapped.infections == (Infection("2", "Eicar"),)
    assert names(wrapped)["AV_LIMITS_EXCEEDED"] == ("message: MaxRecursion",)


def test_whole_message_too_large_is_noted_when_every_part_was_scanned():
    result = evaluate_scans(evidence(scan("1"), scan("", "message", status="too_large")), SETTINGS)
    assert "AV_MESSAGE_TOO_LARGE" in names(result)
    assert result.force is None


def test_encrypted_and_empty_attachments_are_symbols():
    result = evaluate_scans(
        evidence(
            scan("2", status="infected", virus="Heuristics.Encrypted.Zip"),
            scan("3", status="empty", filename="empty.doc", size=0),
        ),
        SETTINGS,
    )
    assert names(result)["AV_ENCRYPTED"] == ("2: Heuristics.Encrypted.Zip",)
    assert names(result)["AV_EMPTY_ATTACHMENT"] == ("3: empty.doc",)
    assert result.infections == ()


def test_scanner_error_tempfails_or_continues_as_configured():
    failed = evaluate_scans(evidence(error="clamd timed out"), SETTINGS)
    assert failed.error == "clamd timed out"
    assert failed.force.kind == ForceKind.TEMPFAIL
    assert names(failed)["AV_SCAN_ERROR"] == ("clamd timed out",)
    accept = SETTINGS.model_copy(update={"on_error": "accept"})
    assert evaluate_scans(evidence(error="down"), accept).force is None


def test_classify_and_safe_filename():
    assert classify("Win.Trojan.Agent-1") == "virus"
    assert classify("Heuristics.Limits.Exceeded.MaxFileSize") == "limits"
    assert classify("Heuristics.Encrypted.PDF") == "encrypted"
    assert classify("Heuristics.Phishing.Email.SpoofedDomain") == "phishing"
    assert classify("Heuristics.Broken.Executable") == "virus"
    assert safe_filename("a\r\nb.doc") == "a b.doc"
    assert safe_filename("\x00") is None
