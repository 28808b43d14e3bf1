"""A member's waterfall in a real browser: selected in Risk's review queue, and a what-if on Score.

Headless Chromium on the console of test_console_browser.py (its lakehouse: contract-shaped
predictions with explanations, and a real trained champion that the Score page explains).
"""

from __future__ import annotations

import pytest
from test_console_browser import CHROMIUM, CHROMIUM_ARGS, console_url, lakehouse  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium is not installed (Debian: apt-get install -y chromium)")
WATERFALL_TITLE = "Why this prediction"


def _open(page, url: str, title: str) -> None:
    page.goto(url)
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.locator("h1", has_text=title).first.wait_for(timeout=120_000)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)


def _assert_waterfall(page, where: str) -> None:
    chart = page.locator(".js-plotly-plot", has_text=WATERFALL_TITLE)
    chart.first.wait_for(timeout=120_000)
    labels = chart.first.inner_text()
    for step in ("base (average member)", "predicted charges"):
        assert step in labels, f"{where}: {step!r} not in the waterfall"
    reasons = page.locator('[data-testid="stMarkdownContainer"]', has_text="Why:")
    reasons.first.wait_for(timeout=60_000)
    assert " USD" in reasons.first.inner_text(), f"{where}: no reasons in words"
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_members_waterfall_opens_on_risk_and_on_score(console_url, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            _open(page, console_url, "Risk")
            queue = page.locator('[data-testid="stDataFrame"]').last
            queue.scroll_into_view_if_needed()
            queue.wait_for(timeout=120_000)
            assert page.locator(".js-plotly-plot", has_text=WATERFALL_TITLE).count() == 0
            queue.click(position={"x": 12, "y": 52})          # the first member's row-selection cell
            _assert_waterfall(page, "Risk")
            page.screenshot(path=str(tmp_path / "risk-waterfall.png"), full_page=True)

            _open(page, console_url, "Score")
            page.get_by_role("button", name="Score").click()
            _assert_waterfall(page, "Score")
            page.screenshot(path=str(tmp_path / "score-waterfall.png"), full_page=True)
        finally:
            browser.close()
