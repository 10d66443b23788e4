"""One console (a real gateway with [web] listen) for the tests of this package: mail
held through SMTP for two domains, users of every role."""

from __future__ import annotations

import pytest

from tests.support.console import attachment_mail, held_mail, start_console, stop_console


@pytest.fixture(scope="package")
def console(tmp_path_factory):
    running = start_console(tmp_path_factory.mktemp("console"))
    try:
        running.send(held_mail("mine one", "bob@example.test"), ["bob@example.test"])
        running.send(held_mail("mine two", "bob@example.test"), ["bob@example.test"])
        running.send(held_mail("theirs", "carol@other.test"), ["carol@other.test"])
        running.send(attachment_mail("bob@example.test"), ["bob@example.test"])
        running.items = {
            "own": running.held_for("mine one"),
            "own2": running.held_for("mine two"),
            "foreign": running.held_for("theirs"),
            "attachment": running.held_for("with attachment"),
        }
        yield running
    finally:
        stop_console(running)
