"""The console in a real browser: started as ``healthcare-mlops app --port N`` starts it.

Headless Chromium (the Debian package) driven by Playwright's Python package opens every
page through the sidebar navigation, waits until the page is drawn to its last element
(console_browser.py, the same definition the browser benchmark times), and fails on

* an error box (``stException``),
* a metric tile whose value is cut off,
* a threshold shown as "None" (or blank) in a table's threshold column or in the page's text,
* a chart without a single data mark (bar, cell, point, line) on a page whose tables have rows,
* Streamlit's "Deploy" button in the header,
* Approve as the primary button (or enabled without an override reason) on a version that fails
  a hard check,
* at 1440 px: a table whose first three columns, or whose key columns (``KEY_COLUMNS``: the reason,
  the threshold, what a check means), are not in view without a sideways scroll,
* "None" anywhere on the page, or a cut number (an interval whose bounds have different decimals,
  "0.993 - 1" for 0.993-1.005);

and after a Reject the Governance page shows the rejected state (no green pass, no primary Approve,
no old comment);

and opens a member's waterfall on Risk (a row picked in the review queue) and on Score.

It saves a screenshot per page under the test's temporary folder.

The lakehouse: contract-shaped synthetic predictions, monitoring and job runs, and a real
trained, validated and promoted model (console_lakehouse.py), so every page has
something to draw.
"""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
import console_browser

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("chromium") is None,
                                 reason="chromium is not installed (Debian: apt-get install -y chromium)")]

# Per table (for a dataframe, the grid's accessible copy that it renders after its canvas): its
# header, the cells of any threshold column that read None or nothing, and its row count.
TABLES_JS = """() => [...document.querySelectorAll('[data-testid="stMain"] table')].map(t => {
  const rows = [...t.querySelectorAll('tr')].map(r => [...r.querySelectorAll('th, td')].map(c => c.textContent.trim()));
  const header = rows[0] || [];
  const columns = header.map((h, i) => /threshold/i.test(h) ? i : -1).filter(i => i >= 0);
  const bad = rows.slice(1).flatMap(
    r => columns.map(i => r[i]).filter(v => v !== undefined && /^(None|nan|null|)$/.test(v)));
  return {header: header.join(' | '), bad, rows: rows.length - 1, cells: rows.slice(1).flat().join(' | ')};
})"""
# Per Vega-Lite chart (drawn as SVG, app/charts.py): its title and how many data marks it drew: the
# items of its mark groups (bars, rects, points, lines), not threshold rules or text labels, which a
# chart without data still draws; nor axes, legends or the title, which are not role-mark groups.
CHARTS_JS = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].map(c => ({
  title: [...c.querySelectorAll('svg .role-title-text text')].map(t => t.textContent).join(' ') || '(untitled)',
  points: c.querySelectorAll('svg g.role-mark:not(.mark-rule):not(.mark-text) > path').length,
}))"""
# Metric tiles whose value does not fit (the browser cuts it with an ellipsis).
CUT_METRICS_JS = """() => [...document.querySelectorAll('[data-testid="stMetricValue"]')]
  .filter(m => [m, ...m.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1))
  .map(m => m.textContent.trim())"""
NONE_THRESHOLD = re.compile(r"threshold[^\n.]{0,40}\bNone\b", re.IGNORECASE)
NONE_WORD = re.compile(r"\bNone\b")
# an interval's two bounds with different numbers of decimals: one of them was cut ("0.993 - 1")
INTERVAL = re.compile(r"(?<![\d.])(\d+(?:\.(\d+))?)\s?[-–]\s?(\d+(?:\.(\d+))?)(?![\d.])")
# Per table (its container key): the headers that must be in view at 1440 px, with the first three
# columns of every table (checked for all tables below).
KEY_COLUMNS = {
    "risk_review_queue": ("Why flagged for review",),
    "alerts_table": ("Value", "Threshold", "Acknowledged", "Retrain run"),
    "gov_checklist": ("What it means", "Challenger verdict", "Challenger value", "Challenger interval"),
    "fairness_groups": ("Share flagged critical",),
    "jobs_table": ("Parameters",),
}
# Per dataframe: its container's key, how many columns it has and the headers of the columns in view
# (the grid's accessible copy holds only the columns it draws), and whether it scrolls sideways: then
# the last column drawn may be cut, so it does not count as in view.
COLUMNS_JS = """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]')].map(f => {
  const holder = f.closest('[class*="st-key-"]');
  const key = holder ? [...holder.classList].find(c => c.startsWith('st-key-')).slice(7).replace(/_rows$/, '') : '';
  const grid = f.querySelector('table');
  const headers = grid ? [...grid.querySelectorAll('thead th, tr:first-child th')].map(
    h => ({text: h.textContent.trim(), index: Number(h.getAttribute('aria-colindex') || 0)})) : [];
  const total = grid ? Number(grid.getAttribute('aria-colcount') || headers.length) : 0;
  const scroller = f.querySelector('.dvn-scroller');
  const sideways = scroller ? scroller.scrollWidth > scroller.clientWidth + 1 : false;
  return {key, headers, total, sideways};
})"""


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory) -> Path:
    from console_lakehouse import build_lakehouse

    home = tmp_path_factory.mktemp("browser") / "lakehouse"
    build_lakehouse(home, 10_000)
    return home


@pytest.fixture(scope="module")
def console_url(lakehouse, tmp_path_factory):
    """``healthcare-mlops --home H app --port N`` in its own process; its address once it answers."""
    log_path = tmp_path_factory.mktemp("browser-log") / "console.log"
    with console_browser.running_console(lakehouse, log_path) as (url, _):
        printed = log_path.read_text()
        assert f"console: {url}" in printed, printed
        yield url


def show_every_table(page) -> None:
    """Open the expanders and wait until every dataframe has drawn its accessible table."""
    for summary in page.locator('[data-testid="stExpander"] details:not([open]) summary').all():
        summary.click()
    page.wait_for_function("""() => document.querySelectorAll('[data-testid="stMain"] table').length >=
        document.querySelectorAll('[data-testid="stDataFrame"]').length""", timeout=30_000)


def problems_on_page(page, title: str) -> list[str]:
    """What a user must not see on a drawn page: errors, thresholds as None, charts without points."""
    show_every_table(page)
    found = [f"{title}: error box: {text[:300]}" for text in console_browser.errors_on_page(page)]
    tables = page.evaluate(TABLES_JS)
    found += [f"{title}: table [{t['header'][:120]}] shows thresholds {t['bad']}" for t in tables if t["bad"]]
    text = page.locator('[data-testid="stMain"]').inner_text()
    found += [f"{title}: text shows '{m.group(0)}'" for m in NONE_THRESHOLD.finditer(text)]
    found += [f"{title}: the tile '{value}' is cut off" for value in page.evaluate(CUT_METRICS_JS)]
    found += columns_out_of_view(page, title)
    shown = text + " | " + " | ".join(t["cells"] for t in tables)      # the page's text and every table cell
    found += [f"{title}: the page shows 'None': ...{shown[max(0, m.start() - 60):m.end() + 20]!r}"
              for m in NONE_WORD.finditer(shown)]
    found += [f"{title}: a cut number '{m.group(0)}'" for m in INTERVAL.finditer(shown)
              if len(m.group(2) or "") != len(m.group(4) or "")]
    if any(t["rows"] for t in tables):
        found += [f"{title}: chart '{c['title']}' has no data points while the page's tables have rows"
                  for c in page.evaluate(CHARTS_JS) if c["points"] == 0]
    return found


def columns_out_of_view(page, title: str) -> list[str]:
    """Tables whose first three columns or whose ``KEY_COLUMNS`` are not wholly in view at this width."""
    found = []
    for table in page.evaluate(COLUMNS_JS):
        headers = table["headers"]
        if not headers:
            continue
        # a selectable table's row-marker column is drawn first and has no header text
        drawn = [h for h in headers if h["text"]]
        whole = drawn[:-1] if table["sideways"] else drawn
        names = [h["text"] for h in whole]
        needed = min(3, len(drawn) if not table["sideways"] else table["total"])
        if len(whole) < needed:
            found.append(f"{title}: table '{table['key']}' shows only {names} of its first three columns at "
                         f"{console_browser.VIEWPORT['width']} px")
        missing = [name for name in KEY_COLUMNS.get(table["key"], ()) if name not in names]
        if missing:
            found.append(f"{title}: table '{table['key']}' needs a sideways scroll for {missing} (in view: {names})")
    return found


# The pages whose secondary parts are views picked in a radio (app/ui.py views): its key.
VIEW_KEYS = {"Risk": "risk_view", "Fairness": "fairness_view", "Drift": "drift_view", "Governance": "gov_view",
             "Jobs": "jobs_view"}


def view_names(page, title: str) -> list[str]:
    """The views ``title``'s page offers besides the one drawn on arrival (the first)."""
    if title not in VIEW_KEYS:
        return []
    labels = page.locator(f'.st-key-{VIEW_KEYS[title]} [data-testid="stRadio"] label').all_inner_texts()
    return [label.strip() for label in labels][1:]


def open_view(page, title: str, view: str) -> None:
    """Pick ``view`` on ``title``'s page and wait until the page is drawn with it."""
    page.locator(f'.st-key-{VIEW_KEYS[title]} [data-testid="stRadio"] label', has_text=view).first.click()
    page.wait_for_timeout(500)          # the click's rerun starts: the script state leaves notRunning
    console_browser.wait_rendered(page, title)


def approve_is_an_override(page) -> list[str]:
    """The lakehouse's challenger fails hard checks (console_lakehouse.py registers it without
    the features table governance re-scores): Approve must not be the primary button, and waits for a reason."""
    buttons = page.locator(".st-key-gov_approve button")
    if not buttons.count():
        return ["Governance: no Approve button for the challenger that fails hard checks"]
    button = buttons.first
    kind = button.get_attribute("data-testid")
    found = [] if kind == "stBaseButton-secondary" else [f"Governance: Approve is {kind} on a failing version"]
    return found + ([] if button.is_disabled() else ["Governance: Approve is enabled without an override reason"])


def test_every_page_opens_in_chromium_without_an_error(console_url, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    problems, seen_tables = [], set()
    with sync_playwright() as playwright:
        browser = console_browser.launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=console_browser.VIEWPORT)
            page.goto(console_url)
            links = page.locator('[data-testid="stSidebarNav"] a')
            links.first.wait_for(timeout=120_000)
            titles = [links.nth(i).inner_text().strip().splitlines()[-1].strip() for i in range(links.count())]
            assert titles == list(console_browser.PAGES)
            for index, title in enumerate(titles):
                console_browser.sidebar_link(page, title).click()
                console_browser.wait_rendered(page, title)
                problems += problems_on_page(page, title)
                seen_tables.update(t["key"] for t in page.evaluate(COLUMNS_JS))
                if title == "Governance":
                    problems += approve_is_an_override(page)
                for view in view_names(page, title):            # every view a page draws only when asked for
                    open_view(page, title, view)
                    problems += problems_on_page(page, f"{title} ({view})")
                    seen_tables.update(t["key"] for t in page.evaluate(COLUMNS_JS))
                if title == "Score":                  # the result's tiles, the interval's two amounts among them
                    page.locator(".st-key-score_button button").click()
                    page.locator('[data-testid="stMetricValue"]').nth(3).wait_for(timeout=120_000)
                    console_browser.wait_rendered(page, title)
                    problems += problems_on_page(page, title)
                page.screenshot(path=str(shots / f"{index + 1}-{title.lower()}.png"), full_page=True)
            assert page.get_by_text("browser@example.com").count() >= 1
            page.goto(f"{console_url}/overview")       # the default page by its own name: no "Page not found"
            console_browser.wait_rendered(page, "Overview")
            assert console_browser.errors_on_page(page) == []
            assert page.locator('[data-testid="stAppDeployButton"]').count() == 0, "the header shows Deploy"
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
    assert set(KEY_COLUMNS) <= seen_tables, f"tables never drawn: {set(KEY_COLUMNS) - seen_tables}"
    saved = sorted(p.name for p in shots.iterdir())
    assert len(saved) == len(console_browser.PAGES), saved
    print(f"screenshots: {shots}")


@contextmanager
def drawn_page(console_url: str, title: str):
    """A new Chromium page on ``title``'s page, drawn to its last element; the browser closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = console_browser.launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=console_browser.VIEWPORT)
            page.goto(console_browser.page_address(console_url, title))
            console_browser.wait_rendered(page, title)
            yield page
        finally:
            browser.close()


def test_the_checks_catch_a_none_threshold_and_an_empty_chart(console_url):
    """The checks above can fail: a page with a 'None' threshold and a chart without points is caught."""
    with drawn_page(console_url, "Drift") as page:
        assert problems_on_page(page, "Drift") == []
        page.evaluate("""() => {
          const cell = [...document.querySelectorAll('[data-testid="stMain"] table')].map(t => {
            const [header, row] = [...t.querySelectorAll('tr')].map(r => [...r.querySelectorAll('th, td')]);
            const i = (header || []).findIndex(c => /threshold/i.test(c.textContent));
            return i >= 0 && row ? row[i] : null; }).find(c => c);
          cell.textContent = 'None';
        }""")
        page.evaluate("""() => { const cells = document.querySelectorAll('[data-testid="stMain"] table td');
                                 cells[cells.length - 1].textContent = 'interval 0.993 - 1'; }""")
        found = problems_on_page(page, "Drift")
        assert any("shows thresholds ['None']" in p for p in found), found
        assert any("the page shows 'None'" in p for p in found), found
        assert any("a cut number '0.993 - 1'" in p for p in found), found
        page.set_viewport_size({"width": 800, "height": 1000})     # the alerts' key columns leave the view
        page.wait_for_timeout(1000)
        assert any("alerts_table' needs a sideways scroll" in p for p in columns_out_of_view(page, "Drift")), \
            columns_out_of_view(page, "Drift")
    with drawn_page(console_url, "Fairness") as page:          # a view with a table and charts
        open_view(page, "Fairness", "Per group")
        assert problems_on_page(page, "Fairness") == []
        # the first chart drawn without data: every mark group emptied, axes and title kept
        page.evaluate("""() => document.querySelector('[data-testid="stVegaLiteChart"] svg')
            .querySelectorAll('g.role-mark').forEach(g => g.replaceChildren())""")
        found = problems_on_page(page, "Fairness")
        assert any("has no data points" in p for p in found), found


WATERFALL_TITLE = "Why this prediction"


def assert_waterfall(page, where: str) -> None:
    """The waterfall (base -> each input -> prediction) and the reasons in words are on the page."""
    chart = page.locator('[data-testid="stVegaLiteChart"]', has_text=WATERFALL_TITLE)
    chart.first.wait_for(timeout=120_000)
    labels = chart.first.text_content()
    for step in ("base (average member)", "predicted charges"):
        assert step in labels, f"{where}: {step!r} not in the waterfall"
    reasons = page.locator('[data-testid="stMarkdownContainer"]', has_text="Why:")
    reasons.first.wait_for(timeout=60_000)
    assert " USD" in reasons.first.inner_text(), f"{where}: no reasons in words"
    assert console_browser.errors_on_page(page) == []


def test_a_members_waterfall_opens_on_risk_and_on_score(console_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = console_browser.launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=console_browser.VIEWPORT)
            page.goto(f"{console_url}/risk")
            console_browser.wait_rendered(page, "Risk")
            queue = page.locator('.st-key-risk_review_queue [data-testid="stDataFrame"]')
            queue.scroll_into_view_if_needed()
            assert page.locator('[data-testid="stVegaLiteChart"]', has_text=WATERFALL_TITLE).count() == 0
            queue.click(position={"x": 12, "y": 52})          # the first member's row-selection cell
            assert_waterfall(page, "Risk")
            page.screenshot(path=str(tmp_path / "risk-waterfall.png"), full_page=True)

            page.goto(f"{console_url}/score")
            console_browser.wait_rendered(page, "Score")
            page.locator(".st-key-score_button button").click()
            assert_waterfall(page, "Score")
            page.screenshot(path=str(tmp_path / "score-waterfall.png"), full_page=True)
        finally:
            browser.close()


# A page drawn for any role: its title shown and its script run ended (the benchmark's wait names each
# page's last element, which depends on the role: Risk's export button is an analyst's).
DRAWN_JS = """(title) => [...document.querySelectorAll('[data-testid="stMain"] h1')]
    .some(h => h.innerText.trim() === title)
  && document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'
  && !document.querySelector('[data-testid="stStatusWidget"]') && !document.querySelector('[data-stale="true"]')"""


def table_toolbar_actions(page) -> list[set[str]]:
    """For each dataframe on the page, the labels of the toolbar actions it shows on hover."""
    show_every_table(page)
    frames = page.locator('[data-testid="stDataFrame"]')
    found = []
    for index in range(frames.count()):
        frame = frames.nth(index)
        frame.scroll_into_view_if_needed()
        frame.hover()
        container = frame.locator('xpath=ancestor::*[@data-testid="stElementContainer"][1]')
        toolbar = container.locator('[data-testid="stElementToolbar"]')     # this table's own, not a chart's
        toolbar.first.wait_for(timeout=10_000)
        found.append({" ".join(filter(None, (b.get_attribute("aria-label"), b.get_attribute("title"),
                                             b.inner_text().strip()))) for b in toolbar.locator("button").all()})
    return found


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_tables_offer_no_download_and_only_a_role_with_export_gets_one(lakehouse, tmp_path, role):
    """Issue 24, item 3: Streamlit's table toolbar offered "Download as CSV" for the Risk page's review
    queue (and every table) to any role, past the analyst-only export. Now no table offers it; the
    Risk page's export button is there for a role allowed ``export`` and absent for a viewer."""
    from playwright.sync_api import sync_playwright

    env = console_browser.console_env(user=f"{role}@example.com", role=role)
    tables_seen, downloads, pages_with_tables = 0, [], set()
    with console_browser.running_console(lakehouse, tmp_path / "console.log", env=env) as (url, _), \
            sync_playwright() as playwright:
        browser = console_browser.launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=console_browser.VIEWPORT)
            page.goto(url)
            page.locator('[data-testid="stSidebarNav"] a').first.wait_for(timeout=120_000)
            for title in console_browser.PAGES:
                console_browser.sidebar_link(page, title).click()
                page.wait_for_function(DRAWN_JS, arg=title, timeout=120_000, polling=100)
                if title == "Risk":             # the review queue: the table the issue downloaded
                    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=60_000)
                for actions in table_toolbar_actions(page):
                    pages_with_tables.add(title)
                    tables_seen += 1
                    assert actions, f"{title}: a table showed no toolbar on hover"    # the probe can see one
                    print(f"{role} {title}: toolbar {sorted(actions)}")
                    downloads += [f"{title}: {sorted(actions)}" for a in actions if "download" in a.lower()]
                if title == "Risk":
                    export = page.get_by_role("button", name=re.compile(r"Download the filtered view"))
                    assert export.count() == (1 if role == "analyst" else 0), title
        finally:
            browser.close()
    assert tables_seen >= 5 and "Risk" in pages_with_tables, (tables_seen, pages_with_tables)
    assert not downloads, "\n".join(downloads)


def test_after_a_reject_the_governance_page_shows_the_rejected_state(console_url):
    """Issue 29 item 4: after Reject, no "Decision on version N" with a green pass, no primary Approve, and
    not the old comment; an empty comment is asked for in the console's words first. Last in this file:
    it changes the lakehouse the module's console reads (the challenger is rejected)."""
    with drawn_page(console_url, "Governance") as page:
        page.locator(".st-key-gov_reject button").click()
        page.get_by_text("Write in the Comment box why you reject").wait_for(timeout=60_000)
        assert "--comment" not in page.locator('[data-testid="stMain"]').inner_text()
        comment = "browser test: the challenger fails hard checks"
        page.locator(".st-key-gov_comment textarea").fill(comment)
        page.locator(".st-key-gov_comment textarea").press("Tab")     # Streamlit takes the value on blur
        page.locator(".st-key-gov_reject button").click()
        page.get_by_text("Rejected by browser@example.com").wait_for(timeout=60_000)
        console_browser.wait_rendered(page, "Governance")
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert "was rejected" in text, text[:2000]
        assert "passes every hard check" not in text and "Decision on version" not in text
        assert page.locator(".st-key-gov_approve button").count() == 0
        assert page.locator(".st-key-gov_comment textarea").count() == 0
        # the headline tile no longer calls the rejected version the challenger
        tiles = page.locator('[data-testid="stMetric"]').all_inner_texts()
        assert not [t for t in tiles if "challenger" in t.lower()], tiles
        assert [t for t in tiles if "Rejected version" in t], tiles
        assert console_browser.errors_on_page(page) == []
