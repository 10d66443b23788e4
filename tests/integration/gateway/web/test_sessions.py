"""Logging in and out: the rate limit per user and per address, session expiry,
logout, a password change ending every session, and their audit rows. A console of
its own (its limits are small, and it locks its address out at the end)."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.store import audit, users
from tests.support.console import PASSWORD, Browser, start_console, stop_console


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    running = start_console(
        tmp_path_factory.mktemp("sessions"),
        login_max_failures_user=3,
        login_max_failures_address=6,
        # 6 s without a request ends a session: above a few argon2 checks (1 s each at a
        # load of 19, and the password test makes three in a row)
        idle_minutes=0.1,
    )
    yield running
    stop_console(running)


def test_logout_ends_the_session(small):
    b = Browser(small.url)
    assert b.login("sam").status_code == 303
    assert b.get("/quarantine").status_code == 200
    cookie = b.client.cookies.get("mw_session")
    assert b.post("/logout").status_code == 303
    replay = httpx.get(small.url + "/quarantine", cookies={"mw_session": cookie})
    assert replay.status_code == 401 and "log in" in replay.text.lower()
    forged = httpx.get(small.url + "/quarantine", cookies={"mw_session": cookie[:-2] + "xx"})
    assert forged.status_code == 401


def test_cookie_flags_and_login_form_csrf(small):
    b = Browser(small.url)
    answer = b.login("sam")
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    # a login post without the form's token is refused
    bare = httpx.post(small.url + "/login", data={"username": "sam", "password": PASSWORD})
    assert bare.status_code == 403


def test_idle_session_expires(small):
    b = Browser(small.url)
    b.login("ada")
    assert b.get("/domains/example.test/lists").status_code == 200
    time.sleep(6.5)
    assert b.get("/domains/example.test/lists").status_code == 401


def test_password_change_ends_other_sessions(small):
    first, second = Browser(small.url), Browser(small.url)
    first.login("olga")
    second.login("olga")
    wrong = first.post("/password", {"current": "nope", "new": "x" * 12, "again": "x" * 12})
    assert wrong.status_code == 422 and "current password is wrong" in wrong.text
    done = first.post("/password", {"current": PASSWORD, "new": "n" * 12, "again": "n" * 12})
    assert done.status_code == 303
    assert second.get("/users").status_code == 401
    assert Browser(small.url).login("olga", "n" * 12).status_code == 303
    assert users.authenticate(small.engine, "olga", PASSWORD) is None
    rows = audit.entries(small.engine, object_id="olga")
    assert rows[0]["action"] == "users.passwd" and rows[0]["actor"] == "olga"
    users.set_password(small.engine, "olga", PASSWORD)


def test_login_rate_limit_per_user_then_per_address(small):
    b = Browser(small.url)
    for _ in range(3):
        assert b.login("otto", "wrong password").status_code == 401
    limited = b.login("otto")  # the right password, too late
    assert limited.status_code == 429 and "too many failed logins" in limited.text
    token = httpx.post(small.url + "/api/token", json={"username": "otto", "password": PASSWORD})
    assert token.status_code == 429 and "error" in token.json()
    assert b.login("sam").status_code == 303  # another name from here: still fine (3 < 6)
    for name in ("x1", "x2", "x3"):
        assert b.login(name, "wrong").status_code == 401
    assert b.login("sam").status_code == 429  # the address is limited now
