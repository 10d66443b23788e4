"""Fuzzing the SMTP command parser through a real session (hypothesis, bounded).

Seeds are the command lines in tests/data/fuzz/smtp-commands.txt; hypothesis
mutates them (bytes inserted, removed, any case, 8-bit, control characters).
Whatever a client sends, every reply is a complete SMTP reply, every 4xx/5xx
carries an enhanced status code, nothing answers 500 with internal text, and the
gateway goes on serving. Set MAILWARDEN_FUZZ_EXAMPLES for a longer run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.mail import RawSmtp

SEEDS = (Path(__file__).parents[3] / "data" / "fuzz" / "smtp-commands.txt").read_bytes()
COMMANDS = [line for line in SEEDS.splitlines() if line]
EXAMPLES = int(os.environ.get("MAILWARDEN_FUZZ_EXAMPLES", "60"))
REPLY = re.compile(r"^[2345]\d\d[ -]")
WITH_STATUS = re.compile(r"^[45]\d\d [45]\.\d{1,3}\.\d{1,3} ")


@st.composite
def command_lines(draw) -> bytes:
    line = bytearray(draw(st.sampled_from(COMMANDS)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(line)))
        choice = draw(st.integers(0, 3))
        if choice == 0 and at < len(line):
            del line[at : at + draw(st.integers(1, 6))]
        elif choice == 1:
            line[at:at] = draw(st.binary(min_size=1, max_size=4).filter(lambda b: b"\n" not in b))
        elif choice == 2:
            line[at:at] = draw(st.sampled_from([b"<", b">", b"@", b":", b'"', b"%", b"!", b" "]))
        else:
            line = bytearray(line.swapcase())
    return bytes(line)


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory):
    from tests.support.dnsserver import LoopbackDns
    from tests.support.gateway import InProcessGateway, write_config
    from tests.support.smtp_sink import SmtpSink

    directory = tmp_path_factory.mktemp("fuzzgw")
    with SmtpSink() as sink, LoopbackDns() as dns:
        extra = {"dns": {"nameservers": [dns.nameserver], "timeout": 1.0}}
        with InProcessGateway(write_config(directory, sink.address, extra)) as gw:
            yield gw


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("MAILWARDEN_FUZZ_EXAMPLES"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(command_lines(), min_size=1, max_size=6))
def test_any_command_line_gets_a_proper_reply(fuzz_gateway, lines):
    client = RawSmtp(fuzz_gateway.port, timeout=20)
    try:
        assert client.reply().startswith("220")
        for line in lines:
            if line.upper().startswith((b"STARTTLS", b"DATA", b"BDAT", b"QUIT")):
                continue  # a handshake or a message body would follow: not a command test
            client.send(line + b"\r\n")
            try:
                reply = client.reply()
            except ConnectionError:
                break  # closed after too many bad commands: allowed
            first = reply.splitlines()[0]
            assert REPLY.match(first), (line, reply)
            if first[0] in "45":
                assert WITH_STATUS.match(first), (line, reply)
            assert "Error: (" not in reply, (line, reply)  # no exception text
    except TimeoutError:
        pytest.fail(f"no reply to {lines!r}")
    finally:
        client.close()
    probe = RawSmtp(fuzz_gateway.port)
    assert probe.reply().startswith("220")
    assert probe.cmd("NOOP").startswith("250")
    probe.close()
