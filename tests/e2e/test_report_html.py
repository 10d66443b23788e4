"""The html report renders in Debian's chromium (Playwright, headless) with its charts,
loads nothing from anywhere, and prints."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from gateway.config import settings_from_dict
from gateway.report.build import build_report
from gateway.report.render_html import render_html
from gateway.store import availability
from gateway.store.db import create_schema, make_engine
from gateway.store.feedback import add_feedback_now
from tests.support.ledgerseed import Seed

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page_html(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('html') / 'ledger.db'}")
    create_schema(engine)
    seed = Seed(engine)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for day in range(30):
        when = start + timedelta(days=day, hours=9)
        seed.many(40 + day, "u@a.test", when, delay_s=1.0 + day % 5)
        seed.many(10, "u@a.test", when, action="quarantine", spam=True)
        seed.many(2, "u@b.test", when, action="reject", spam=True)
    missed = seed.many(3, "u@a.test", start + timedelta(days=4), delay_s=2.0)
    seed.mail("u@a.test", start + timedelta(days=6), virus=True, cleaned=True)
    seed.commit()
    for qid in missed:
        add_feedback_now(engine, qid, "spam", source="user", actor="u@a.test")
    beats = [
        {"node": "n", "at": start + timedelta(minutes=m), "accepting": True, "next_hop_ok": True}
        for m in range(30 * 1440)
        if not 7 * 1440 <= m < 7 * 1440 + 60  # an hour down on day 8
    ]
    with engine.begin() as conn:
        conn.execute(insert(availability.heartbeats), beats)
    settings = settings_from_dict({"domains": {"accept": ["a.test", "b.test"]}})
    report = build_report(engine, settings, "2026-11", now=datetime(2026, 12, 2, tzinfo=UTC))
    engine.dispose()
    return render_html(report)


def test_the_page_is_self_contained(page_html):
    assert "<script" not in page_html
    for remote in ("http://", "https://", "//fonts", "url("):
        # the only URLs allowed are the SVG namespace identifiers
        assert page_html.replace('xmlns="http://www.w3.org/2000/svg"', "").count(remote) == 0
    assert page_html.count("<svg") == 3 * 5  # all domains, a.test, b.test: five charts each


def test_chromium_renders_the_charts_and_loads_nothing(page_html, tmp_path):
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is not installed: run `make system-deps` (Debian chromium)")
    from playwright.sync_api import sync_playwright

    path = tmp_path / "report.html"
    path.write_text(page_html, encoding="utf-8")
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1200})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), timeout=60_000)
            assert page.title() == "Service report 2026-11"
            assert page.locator("h2").all_inner_texts() == ["All domains", "a.test", "b.test"]
            # the first section's charts have real size and drawn marks
            charts = page.locator("section.scope").first.locator("svg.chart")
            assert charts.count() == 5
            for index in range(5):
                box = charts.nth(index).bounding_box()
                assert box and box["width"] > 600 and box["height"] > 150
            bars = page.locator("section.scope").first.locator("svg.chart").first.locator("rect")
            assert bars.count() > 30  # 30 days of stacked bars (+ legend)
            assert page.locator("section.scope").first.locator("polyline").count() >= 1
            status = page.locator("section.scope").first.locator("span.status")
            texts = status.all_inner_texts()
            assert texts[8] == "missed"  # availability: 60 minutes down, 43 allowed
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 50_000
            pdf = tmp_path / "report.pdf"
            page.pdf(path=str(pdf), format="A4")  # print: each scope starts a new page
            pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
            assert pages >= 3
        finally:
            browser.close()
    assert [u for u in requests if not u.startswith("file://")] == []
