"""The delivery's SMTP client against real servers: a scripted one on a socket (to
see what goes over the wire and when) and aiosmtpd with STARTTLS."""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Awaitable, Callable

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from gateway.delivery.smtp_client import (
    SmtpClient,
    SMTPConnectError,
    SMTPTimeoutError,
    data_block,
    quoted,
)
from tests.support.smtp_sink import free_port
from tests.support.tls import issue

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
EHLO_PIPELINING = b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_PLAIN = b"250-scripted\r\n250 8BITMIME\r\n"


async def _serve(script: Script) -> tuple[asyncio.Server, int]:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_until(reader: asyncio.StreamReader, end: bytes) -> bytes:
    return await asyncio.wait_for(reader.readuntil(end), 5)


def test_with_pipelining_a_transaction_is_two_round_trips():
    seen: list[bytes] = []

    async def script(reader, writer):
        await _read_until(reader, b"\r\n")  # EHLO
        writer.write(EHLO_PIPELINING)
        # nothing is answered until MAIL, both RCPTs and DATA are here: a client
        # waiting for the reply to MAIL would hang
        seen.append(await _read_until(reader, b"DATA\r\n"))
        writer.write(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 No such user\r\n354 go on\r\n")
        seen.append(await _read_until(reader, b"\r\n.\r\n"))
        writer.write(b"250 2.0.0 Ok: queued")  # the final reply in two pieces
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b" as X\r\n")
        await _read_until(reader, b"QUIT\r\n")
        writer.write(b"221 bye\r\n")

    async def run():
        server, port = await _serve(script)
        async with server:
            client = await SmtpClient.open("127.0.0.1", port, "gw.test", 5, 5)
            assert client.supports("pipelining") and client.supports("8BITMIME")
            mail, rcpts, final = await client.transaction(
                "a@x.test", ["BODY=8BITMIME"], ["b@y.test", "c@y.test"], b".dot\r\nline\r\n"
            )
            await client.quit()
        return mail, rcpts, final

    mail, rcpts, final = asyncio.run(run())
    assert seen[0] == (
        b"MAIL FROM:<a@x.test> BODY=8BITMIME\r\n"
        b"RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
    )
    assert seen[1] == b"..dot\r\nline\r\n.\r\n"
    assert (mail.code, [r.code for r in rcpts]) == (250, [250, 550])
    assert rcpts[1].message == "5.1.1 No such user"
    assert (final.code, final.message) == (250, "2.0.0 Ok: queued as X")


def test_without_pipelining_each_command_waits_for_its_reply():
    early: list[bytes] = []

    async def script(reader, writer):
        await _read_until(reader, b"\r\n")
        writer.write(EHLO_PLAIN)
        for reply in (b"250 Ok\r\n", b"250 Ok\r\n", b"354 go on\r\n"):
            await _read_until(reader, b"\r\n")
            with contextlib.suppress(TimeoutError):  # nothing more before this reply
                early.append(await asyncio.wait_for(reader.readline(), 0.1))
            writer.write(reply)
        await _read_until(reader, b"\r\n.\r\n")
        writer.write(b"250 queued\r\n")
        await _read_until(reader, b"QUIT\r\n")

    async def run():
        server, port = await _serve(script)
        async with server:
            client = await SmtpClient.open("127.0.0.1", port, "gw.test", 5, 5)
            assert not client.supports("pipelining")
            result = await client.transaction("", [], ["b@y.test"], b"x\r\n")
            await client.quit()
        return result

    mail, rcpts, final = asyncio.run(run())
    assert early == []
    assert (mail.code, [r.code for r in rcpts], final.code) == (250, [250], 250)


def test_a_refused_transaction_is_reset_and_the_connection_used_again():
    commands: list[bytes] = []

    async def script(reader, writer):
        await _read_until(reader, b"\r\n")
        writer.write(EHLO_PIPELINING)
        await _read_until(reader, b"DATA\r\n")  # both recipients refused, DATA too
        writer.write(b"250 Ok\r\n550 5.1.1 unknown\r\n503 5.5.1 no valid recipients\r\n")
        commands.append(await _read_until(reader, b"\r\n"))
        writer.write(b"250 reset\r\n")
        await _read_until(reader, b"DATA\r\n")
        writer.write(b"250 Ok\r\n250 Ok\r\n354 go\r\n")
        await _read_until(reader, b"\r\n.\r\n")
        writer.write(b"250 queued\r\n")

    async def run():
        server, port = await _serve(script)
        async with server:
            client = await SmtpClient.open("127.0.0.1", port, "gw.test", 5, 5)
            first = await client.transaction("a@x.test", [], ["nobody@y.test"], b"x\r\n")
            second = await client.transaction("a@x.test", [], ["b@y.test"], b"x\r\n")
            client.close()
        return first, second

    first, second = asyncio.run(run())
    assert commands == [b"RSET\r\n"]
    assert [r.code for r in first[1]] == [550] and first[2] is None
    assert second[2] is not None and second[2].code == 250


def test_starttls_then_delivery_to_aiosmtpd(tmp_path):
    cert, key, _ = issue(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(str(cert), str(key))
    got = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            got.append((session.ssl is not None, envelope.rcpt_tos, envelope.original_content))
            return "250 2.0.0 stored"

    class TlsController(Controller):
        def factory(self):
            return SMTP(self.handler, decode_data=False, tls_context=server_tls)

    port = free_port()
    controller = TlsController(Handler(), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:

        async def run():
            client_tls = ssl.create_default_context()
            client_tls.check_hostname = False
            client_tls.verify_mode = ssl.CERT_NONE
            client = await SmtpClient.open("127.0.0.1", port, "gw.test", 5, 5)
            assert client.supports("starttls")
            await client.starttls(client_tls, "127.0.0.1")
            await client.ehlo("gw.test")
            result = await client.transaction("a@x.test", [], ["b@y.test"], b"hi\r\n.\r\n")
            await client.quit()
            return result

        _, _, final = asyncio.run(run())
    finally:
        controller.stop()
    assert final is not None and final.code == 250
    assert got == [(True, ["b@y.test"], b"hi\r\n.\r\n")]


def test_connection_refused_is_a_connect_error():
    with pytest.raises(SMTPConnectError, match=r"Error connecting to 127\.0\.0\.1"):
        asyncio.run(SmtpClient.open("127.0.0.1", free_port(), "gw.test", 5, 5))


def test_message_and_addresses_are_sent_as_aiosmtplib_sent_them():
    pieces = [b".", b"..", b"a", b"\r\n", b"\n", b"\r", b"\r\r\n", b" ", b"\xe9"]
    rng = random.Random(17)
    for _ in range(3000):
        message = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 12)))
        expected = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"
        assert data_block(message) == expected, message
    for address in [
        "",
        "bob@example.test",
        "Bob.O'Neil+tag@sub.example.test",
        '"odd local"@example.test',
        "Bob <bob@example.test>",
        "üser@example.test",
    ]:
        assert quoted(address) == quote_address(address), address


def test_a_kept_session_that_the_server_ended_is_not_used_again():
    async def script(reader, writer):
        await _read_until(reader, b"\r\n")
        writer.write(EHLO_PIPELINING)
        await asyncio.sleep(0.1)
        writer.write(b"421 4.4.2 idle too long\r\n")  # and the close comes later
        await asyncio.sleep(1)

    async def run():
        server, port = await _serve(script)
        async with server:
            client = await SmtpClient.open("127.0.0.1", port, "gw.test", 5, 5)
            fresh = client.is_connected
            await asyncio.sleep(0.5)
            ended = client.is_connected
            client.close()
        return fresh, ended

    assert asyncio.run(run()) == (True, False)


def test_a_server_that_never_greets_times_out_and_is_closed():
    async def run():
        gone = asyncio.Event()

        async def script(reader, writer):
            await reader.read()  # until the client closes
            gone.set()

        server, port = await _serve_silent(script)
        async with server:
            with pytest.raises(SMTPTimeoutError, match="Timed out connecting"):
                await SmtpClient.open("127.0.0.1", port, "gw.test", 0.3, 5)
            await asyncio.wait_for(gone.wait(), 5)

    asyncio.run(run())


async def _serve_silent(script: Script) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(script, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_server_that_stops_answering_times_out_and_is_closed():
    async def run():
        gone = asyncio.Event()

        async def script(reader, writer):
            await reader.read()  # EHLO and then nothing, until the client closes
            gone.set()

        server, port = await _serve(script)
        async with server:
            started = time.monotonic()
            with pytest.raises(SMTPTimeoutError, match="Timed out waiting for server response"):
                await SmtpClient.open("127.0.0.1", port, "gw.test", 5, 0.3)
            waited = time.monotonic() - started
            await asyncio.wait_for(gone.wait(), 5)
        return waited

    assert 0.25 < asyncio.run(run()) < 3
