"""Antivirus end to end: real SMTP client, the gateway, a real clamd and a real sink."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import smtplib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.cli import main as cli
from gateway.mail.mime import leaf_parts
from gateway.store import attachments, av_policy, ledger, quarantine
from tests.support.clamd import ClamdServer
from tests.support.virusmail import EICAR, Payload, Shapes
from tests.support.wait import wait_until

EICAR_NAME = "Mailwarden.Test.EICAR.UNOFFICIAL"
CLEAN_NOTES = Payload("notes.txt", b"meeting at ten\r\n")


def infected_mail(ident: str = "e1") -> bytes:
    return Shapes(CLEAN_NOTES).base64(EICAR, "invoice.doc", ident).encode()


def send(port: int, rcpts: list[str], data: bytes):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.sender.test")
        client.mail("alice@sender.test")
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            assert code == 250, text
        try:
            return client.data(data)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error


def rows(gw, table):
    with gw.gateway.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def parts(data: bytes):
    return list(leaf_parts(email.message_from_bytes(data, policy=email.policy.default)))


@pytest.fixture
def av_gateway(make_gateway, clamd):
    return make_gateway(clamav={"socket": str(clamd.socket), "timeout": 10.0})


def set_policies(gw, *targets: tuple[str, dict]) -> None:
    """Rows written straight into the database, then the running gateway told to read
    them again (what the Redis notice or its poll does: tests/.../test_av_policy_pickup)."""
    for target, fields in targets:
        av_policy.set_policy(gw.gateway.db.engine, target, **fields)
    gw.call(gw.gateway.av_policies.reload())


def test_each_recipient_gets_the_version_their_policy_asks_for(av_gateway, sink):
    engine = av_gateway.gateway.db.engine
    set_policies(
        av_gateway,
        ("@example.test", {"mode": "clean", "keep_original": True}),
        ("carol@example.test", {"mode": "detect"}),
        ("dave@example.test", {"enabled": False}),
        ("@other.test", {"keep_original": False}),
    )
    data = infected_mail()
    rcpts = ["bob@example.test", "carol@example.test", "dave@example.test", "erin@other.test"]
    code, reply = send(av_gateway.port, rcpts, data)
    assert code == 250, reply
    queue_id = reply.decode().rsplit(" ", 1)[1]
    sink.wait_for(4)
    got = {m.rcpts[0]: m.data for m in sink.messages}
    assert all(len(m.rcpts) == 1 for m in sink.messages)

    # bob: cleaned, original kept in quarantine and named in the notice
    bob = email.message_from_bytes(got["bob@example.test"], policy=email.policy.default)
    assert bob["X-Virus-Status"] == f"Cleaned ({EICAR_NAME})"
    assert bob["X-Virus-Scanned"].startswith("mailwarden using ClamAV")
    bob_parts = parts(got["bob@example.test"])
    original = parts(data)
    assert EICAR not in got["bob@example.test"]
    assert bob_parts[1].content_type == "text/plain"
    notice = bob_parts[1].text()
    assert EICAR_NAME in notice and "invoice.doc" in notice
    [item] = [q for q in rows(av_gateway, quarantine.quarantine) if q["domain"] == "example.test"]
    assert item["kind"] == quarantine.VIRUS_ORIGINAL and item["id"] in notice
    assert quarantine.original(engine, item["id"]) == data
    # the other parts, byte for byte
    assert bob_parts[0].payload == original[0].payload
    assert bob_parts[2].payload == original[2].payload

    # carol: detect only, the message unchanged below our headers
    assert got["carol@example.test"].endswith(data)
    carol = email.message_from_bytes(got["carol@example.test"], policy=email.policy.default)
    assert carol["X-Virus-Status"] == f"Infected ({EICAR_NAME})"

    # dave: antivirus off, no virus headers, unchanged
    dave = email.message_from_bytes(got["dave@example.test"], policy=email.policy.default)
    assert dave["X-Virus-Status"] is None
    assert parts(got["dave@example.test"])[1].payload == EICAR

    # erin (other.test: clean, originals not kept): cleaned, no quarantine item for her
    erin_parts = parts(got["erin@other.test"])
    assert erin_parts[1].content_type == "text/plain"
    assert "quarantine" not in erin_parts[1].text()
    assert not [q for q in rows(av_gateway, quarantine.quarantine) if q["domain"] == "other.test"]

    # the ledger: per recipient mode and outcome, the signatures used
    message = next(m for m in rows(av_gateway, ledger.messages) if m["id"] == queue_id)
    assert message["virus_found"] and message["viruses"] == [EICAR_NAME]
    assert message["av_db_version"].startswith("ClamAV ")
    by_rcpt = {r["rcpt"]: r for r in rows(av_gateway, ledger.recipients)}
    assert (
        by_rcpt["bob@example.test"]["cleaned"],
        by_rcpt["bob@example.test"]["original_kept"],
    ) == (
        True,
        True,
    )
    assert by_rcpt["carol@example.test"]["av_mode"] == "detect"
    assert not by_rcpt["carol@example.test"]["cleaned"]
    assert by_rcpt["dave@example.test"]["av_enabled"] is False
    assert by_rcpt["erin@other.test"]["cleaned"] and not by_rcpt["erin@other.test"]["original_kept"]


def test_detect_copy_is_byte_identical_below_our_headers(av_gateway, sink):
    set_policies(av_gateway, ("carol@example.test", {"mode": "detect"}))
    data = infected_mail("e2")
    code, _ = send(av_gateway.port, ["carol@example.test"], data)
    assert code == 250
    [got] = sink.wait_for(1)
    assert got.data.endswith(data)


def test_clean_copy_differs_only_in_the_infected_part(av_gateway, sink):
    data = infected_mail("e3")
    code, _ = send(av_gateway.port, ["bob@example.test"], data)
    assert code == 250
    [got] = sink.wait_for(1)
    boundary = b"--=_mixed_e3"
    before = data.split(boundary)
    after = got.data.split(boundary)
    assert len(before) == len(after)
    assert after[1] == before[1]  # the text body
    assert after[3] == before[3]  # the clean attachment, encoded bytes untouched
    assert after[4] == before[4]  # the closing boundary and epilogue
    assert EICAR_NAME.encode() in after[2] and after[2] != before[2]


def test_scanner_stopped_mid_run_tempfails_and_nothing_is_delivered(make_gateway, sink):
    with ClamdServer() as own:
        gw = make_gateway(clamav={"socket": str(own.socket), "timeout": 3.0})
        code, _ = send(gw.port, ["bob@example.test"], infected_mail("e4"))
        assert code == 250
        sink.wait_for(1)
        own.stop()
        code, text = send(gw.port, ["bob@example.test"], infected_mail("e5"))
        assert code == 451, text
        time.sleep(0.5)
        assert len(sink.messages) == 1  # nothing delivered unscanned
        outcomes = [m["outcome"] for m in rows(gw, ledger.messages)]
        assert sorted(outcomes) == ["accepted", "tempfailed"]


def test_antivirus_off_recipient_is_not_tempfailed_when_the_scanner_is_down(make_gateway, sink):
    with ClamdServer() as own:
        gw = make_gateway(clamav={"socket": str(own.socket), "timeout": 3.0})
        set_policies(gw, ("dave@example.test", {"enabled": False}))
        own.stop()
        code, _ = send(gw.port, ["dave@example.test"], infected_mail("e6"))
        assert code == 250
        [got] = sink.wait_for(1)
        assert email.message_from_bytes(got.data)["X-Virus-Status"] is None


def test_policy_cli_changes_what_the_running_gateway_does(av_gateway, sink, capsys):
    config = config_path(av_gateway)
    assert cli(["policy", "set", "bob@example.test", "--mode", "detect", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "mode           detect   (from bob@example.test)" in out
    wait_until(lambda: av_gateway.gateway.av_policies.rows.get("bob@example.test"), timeout=10)
    code, _ = send(av_gateway.port, ["bob@example.test"], infected_mail("e7"))
    assert code == 250
    [got] = sink.wait_for(1)
    assert email.message_from_bytes(got.data)["X-Virus-Status"] == f"Infected ({EICAR_NAME})"
    assert cli(["policy", "show", "bob@example.test", "--json", "--config", config]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["mode"] == "detect" and shown["from"]["mode"] == "bob@example.test"


def test_delivered_attachments_are_rescanned_with_new_signatures(make_gateway, clamd, sink, capsys):
    new_virus = b"MZ" + b"a brand new worm that no signature knows yet" * 20
    gw = make_gateway(clamav={"socket": str(clamd.socket), "attachment_retention_days": 30})
    data = Shapes(CLEAN_NOTES).base64(new_virus, "setup.exe", "r1").encode()
    code, reply = send(gw.port, ["bob@example.test", "carol@other.test"], data)
    assert code == 250
    queue_id = reply.decode().rsplit(" ", 1)[1]
    sink.wait_for(1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(rows(gw, attachments.attachment_refs)) < 2:
        time.sleep(0.05)
    stored = rows(gw, attachments.attachment_refs)
    assert sorted(r["filename"] for r in stored) == ["notes.txt", "setup.exe"]
    # a week later, signatures know the new worm
    sig = f"{hashlib.md5(new_virus).hexdigest()}:{len(new_virus)}:Mailwarden.Test.NewWorm\n"
    with ClamdServer(extra_databases={"new.hdb": sig.encode()}) as updated:
        config = _config_with_clamd(gw, updated)
        since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        assert cli(["rescan", "--since", since, "--config", config, "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert (summary["scanned"], summary["infected"], summary["missed_virus_recorded"]) == (
            2,
            1,
            1,
        )
        assert summary["hits"][0]["virus"] == "Mailwarden.Test.NewWorm.UNOFFICIAL"
        # a second rescan records nothing new
        assert cli(["rescan", "--since", since, "--config", config, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["missed_virus_recorded"] == 0
    feedback = rows(gw, ledger.feedback)  # one row per recipient, each counted once
    assert sorted(fb["rcpt"] for fb in feedback) == ["bob@example.test", "carol@other.test"]
    for fb in feedback:
        assert (fb["message_id"], fb["kind"], fb["source"]) == (
            queue_id,
            ledger.MISSED_VIRUS,
            "rescan",
        )
        assert fb["details"]["parts"] == [{"part_id": "2", "filename": "setup.exe"}]


def config_path(gw) -> str:
    """The config file make_gateway wrote (beside the gateway's spool)."""
    return str(Path(gw.settings.spool.path).parent / "mailwarden.toml")


def _config_with_clamd(gw, server: ClamdServer) -> str:
    source = Path(config_path(gw))
    path = source.with_name("rescan.toml")
    text = source.read_text()
    text = text.replace(str(gw.settings.clamav.socket), str(server.socket))
    path.write_text(text)
    return str(path)
