"""Console speed as a person meets it: every page in headless Chromium against 1M predictions.

Goal (issue 15): every page drawn in < 2 s on the first visit after the server starts and
< 1 s on later visits. The lakehouse is bench_console.py's (contract-shaped predictions,
30 monitoring runs, job runs, a real registered champion and challenger); the console is
started the way a user starts it, ``healthcare-mlops --home H app --port N``, and driven by
Playwright with the system Chromium (``/usr/bin/chromium``).

"Drawn" (tests/console_browser.py, ``wait_rendered``): the page's title is shown, the
element the page script draws LAST is visible (``PAGES``: Overview the job-runs table, Risk
the CSV download button, Fairness the "over time" chart, Drift the Acknowledge button,
Governance the model card, Jobs the Run now button, Score the Score button), every chart
has drawn its marks, no element is stale and Streamlit's running indicator is gone.
The clock starts when the browser is told to navigate (or the sidebar link is clicked).

Per page it reports:

* first visit: a FRESH server per page (started, answering ``/_stcore/health``), then one
  new browser tab opened on the page's URL: imports, connections and caches all cold; twice,
  as a new user (a new browser context, nothing cached) and as a returning user (a context
  that opened the console at the same address before the restart: Streamlit's hashed,
  immutable scripts already in the browser's HTTP cache), each on its own fresh server;
* later visit by URL: a new tab on the page's URL, the server warm (median and worst of
  ``--repeat``); a new tab is a new Streamlit session, so it includes the websocket set-up;
* sidebar click: from the previous page in the list, a click on the page's sidebar link;
* with each time, the CPU seconds the server's processes and the browser (Playwright and
  Chromium) used meanwhile (from /proc): other load on the machine stretches the wall time,
  not these, and they say how much of the time is the browser's;
* the floor side by side: Streamlit's own bare page (a title, a four-row table, a button;
  ``console_browser.BARE_PAGE``) started from the checkout with the console's config, its
  first visit and later visits by URL measured the same way in the same browser, and each
  page's time as a multiple of it: what is Streamlit's and the browser's, and what is ours;
* the baseline side by side: bench_console.py's AppTest time of the same page (no browser,
  warm process, query caches cleared), and which heavy libraries a fresh process imports
  to draw the page (AppTest in a new interpreter, ``sys.modules`` after the run).

    .venv/bin/python benchmarks/bench_console_browser.py                     # builds 1M in a temp dir
    .venv/bin/python benchmarks/bench_console_browser.py --home /tmp/lh --repeat 5
    .venv/bin/python benchmarks/bench_console_browser.py --predictions 10000 --no-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the browser harness the browser test uses
from console_browser import BARE_PAGE, PAGES, REPO, VIEWPORT, CpuClock, errors_on_page, lakehouse, \
    free_port, lakehouse_arguments, launch_chromium, page_address, running_bare_page, running_console, sidebar_link, \
    wait_rendered  # noqa: E402

FIRST_GOAL, LATER_GOAL = 2.0, 1.0
HEAVY = ("mlflow", "pyspark", "sklearn", "scipy", "databricks")
IMPORT_PROBE = """
import json, os, sys, time
sys.path.insert(0, {repo!r})
os.environ["STREAMLIT_LOGGER_LEVEL"] = "error"
from streamlit.testing.v1 import AppTest
before = set(sys.modules)
at = AppTest.from_file({main!r}, default_timeout=600)
at.switch_page("../pages/{page}.py")
start = time.perf_counter()
at.run()
seconds = time.perf_counter() - start
assert not at.exception, at.exception[0].value
loaded = sorted({{m.split(".")[0] for m in set(sys.modules) - before}} & set({heavy!r}))
print(json.dumps({{"seconds": seconds, "heavy": loaded}}))
"""


def _rendered_after(page, title: str, action, server_pid: int) -> tuple[float, float, float]:
    """Seconds from ``action()`` (navigate or click) until ``title``'s page is drawn, and the CPU
    seconds the server's processes and the browser's (Playwright and Chromium, this process's
    children) used meanwhile: other load on the machine stretches the wall time, not these."""
    server, client = CpuClock(server_pid), CpuClock(os.getpid(), without=server_pid)
    start = time.perf_counter()
    action()
    wait_rendered(page, title)
    seconds = time.perf_counter() - start
    if errors := errors_on_page(page):
        raise RuntimeError(f"{title}: {errors[0]}")
    return seconds, server.seconds(), client.seconds()


def first_visits(browser, home: Path, logs: Path) -> tuple[dict[str, tuple], dict[str, tuple], dict[str, float]]:
    """Per page, the first visit after a fresh server start, twice: a new user (a new browser context:
    nothing cached) and a returning user (a context that has opened the console on the same address
    before a restart: Streamlit's hashed, immutable scripts in its HTTP cache); and each server's
    start (command to ``/_stcore/health`` answering)."""
    new_user, returning, starts = {}, {}, {}
    port = free_port()
    returning_context = browser.new_context(viewport=VIEWPORT)
    with running_console(home, logs / "first-before.log", port=port) as (url, server):
        page = returning_context.new_page()            # the returning user's earlier visit, not counted
        _rendered_after(page, "Score", lambda: page.goto(page_address(url, "Score")), server.pid)
        page.close()
    for title, (path, _) in PAGES.items():
        start = time.perf_counter()
        with running_console(home, logs / f"first-{path}.log", port=port) as (url, server):
            starts[title] = time.perf_counter() - start
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            new_user[title] = _rendered_after(page, title, lambda: page.goto(page_address(url, title)), server.pid)
            context.close()
        with running_console(home, logs / f"first-returning-{path}.log", port=port) as (url, server):
            page = returning_context.new_page()
            returning[title] = _rendered_after(page, title, lambda: page.goto(page_address(url, title)), server.pid)
            page.close()
        print(f"  server start {starts[title]:.2f} s, first visit {title}: new user {_cell([new_user[title]])}, "
              f"returning user {_cell([returning[title]])}", flush=True)
    returning_context.close()
    return new_user, returning, starts


def warm_visits(browser, home: Path, logs: Path, repeat: int) -> tuple[dict, dict]:
    """One server: each page once to warm up, then ``repeat`` rounds of URL visits and sidebar clicks."""
    by_url: dict[str, list[tuple]] = {title: [] for title in PAGES}
    by_click: dict[str, list[tuple]] = {title: [] for title in PAGES}
    with running_console(home, logs / "warm.log") as (url, server):
        context = browser.new_context(viewport=VIEWPORT)

        def visit(page, title: str, action) -> tuple[float, float, float]:
            return _rendered_after(page, title, action, server.pid)

        for title in PAGES:                             # warm-up, not counted
            page = context.new_page()
            visit(page, title, lambda: page.goto(page_address(url, title)))
            page.close()
        for _ in range(repeat):
            for title in PAGES:
                page = context.new_page()
                by_url[title].append(visit(page, title, lambda: page.goto(page_address(url, title))))
                page.close()
            titles = list(PAGES)
            page = context.new_page()
            visit(page, titles[-1], lambda: page.goto(page_address(url, titles[-1])))
            for title in titles:
                by_click[title].append(visit(page, title, lambda: sidebar_link(page, title).click()))
            page.close()
        context.close()
    return by_url, by_click


def bare_page_visits(browser, scratch: Path, logs: Path, repeat: int) -> tuple[float, tuple, list[tuple]]:
    """The floor: Streamlit's bare page (console_browser.BARE_PAGE) served from the checkout with the
    console's config; its server start, a first visit on the fresh server and ``repeat`` later visits by
    URL, each in a new tab as for the pages."""
    title = BARE_PAGE[0]
    start = time.perf_counter()
    with running_bare_page(scratch, logs / "bare.log") as (url, server):
        started = time.perf_counter() - start
        context = browser.new_context(viewport=VIEWPORT)
        visits = []
        for _ in range(repeat + 1):
            page = context.new_page()
            visits.append(_rendered_after(page, title, lambda: page.goto(url), server.pid))
            page.close()
        context.close()
    print(f"  server start {started:.2f} s, first visit {title}: {_cell(visits[:1])}", flush=True)
    return started, visits[0], visits[1:]


def import_probe(home: Path, page: str) -> dict:
    """AppTest of one page in a new interpreter: seconds and the heavy libraries it imported."""
    code = IMPORT_PROBE.format(repo=str(REPO), main=str(REPO / "app" / "main.py"), page=page, heavy=HEAVY)
    env = {**os.environ, "HEALTHCARE_MLOPS_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,  # nosec B603
                          timeout=600, cwd=str(REPO))
    if done.returncode != 0:
        raise RuntimeError(f"import probe of {page} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def apptest_baseline(home: Path) -> dict[str, float]:
    """bench_console.py's AppTest times of each page (query caches cleared, warm process)."""
    import bench_console

    os.environ["HEALTHCARE_MLOPS_HOME"] = str(home)
    return {page: r["cold_median"] for page, r in bench_console.time_pages(1).items() if page in
            {path for path, _ in PAGES.values()}}


def _cell(samples: list[tuple]) -> str:
    """Wall seconds median / worst; in brackets the CPU seconds (medians) of the server and the browser."""
    walls = [wall for wall, _, _ in samples]
    server, browser = (statistics.median(sample[i] for sample in samples) for i in (1, 2))
    wall = f"{walls[0]:.2f}" if len(walls) == 1 else f"{statistics.median(walls):.2f} / {max(walls):.2f}"
    return f"{wall} ({server:.2f} + {browser:.2f})"


def _ratio(samples: list[tuple], floor: list[tuple]) -> str:
    return f"{statistics.median(s[0] for s in samples) / statistics.median(f[0] for f in floor):.1f}x"


def report(first: dict, returning: dict, starts: dict, by_url: dict, by_click: dict, probes: dict, baseline: dict,
           floor: tuple) -> bool:
    print("\nSeconds from navigation (or click) to the page drawn; in brackets the CPU seconds the server "
          "+ the browser used meanwhile (other load on the machine stretches the wall time, not these).\n")
    print("| page | drawn when visible | server start (s) | first visit, fresh server: new user (s) | first visit, "
          "fresh server: returning user (s) | later visit by URL, median / worst (s) | sidebar click, median / "
          "worst (s) | vs the bare page: first (new user) / later by URL | AppTest, bench_console (s) "
          "| fresh-process AppTest (s) | heavy libraries imported |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    floor_start, floor_first, floor_later = floor
    print(f"| {BARE_PAGE[0]} (the floor) | `{BARE_PAGE[1]}` | {floor_start:.2f} | {_cell([floor_first])} | - | "
          f"{_cell(floor_later)} | - | 1.0x / 1.0x | - | - | - |")
    for title, (path, last) in PAGES.items():
        probe = probes.get(title)
        cells = [title, f"`{last}`", f"{starts[title]:.2f}", _cell([first[title]]), _cell([returning[title]]),
                 _cell(by_url[title]), _cell(by_click[title]),
                 f"{_ratio([first[title]], [floor_first])} / {_ratio(by_url[title], floor_later)}",
                 f"{baseline[path]:.3f}" if path in baseline else "-",
                 f"{probe['seconds']:.2f}" if probe else "-", ", ".join(probe["heavy"]) or "none" if probe else "-"]
        print("| " + " | ".join(cells) + " |")
    verdicts = [
        ("first visit, new user", max(sample[0] for sample in first.values()), FIRST_GOAL),
        ("first visit, returning user", max(sample[0] for sample in returning.values()), FIRST_GOAL),
        ("sidebar click", max(sample[0] for t in PAGES for sample in by_click[t]), LATER_GOAL),
        ("later visit by URL (new tab)", max(sample[0] for t in PAGES for sample in by_url[t]), LATER_GOAL),
    ]
    print()
    for name, worst, goal in verdicts:
        print(f"{name}: slowest {worst:.2f} s (goal < {goal:g} s): {'met' if worst < goal else 'NOT met'}")
    return all(worst < goal for _, worst, goal in verdicts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    lakehouse_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of later visits and sidebar clicks")
    parser.add_argument("--no-baseline", action="store_true", help="skip the AppTest columns")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("HEALTHCARE_MLOPS_ROLE", "approver")
    with tempfile.TemporaryDirectory() as scratch:
        home = lakehouse(args, scratch)
        logs = Path(scratch) / "logs"
        logs.mkdir()
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                floor = bare_page_visits(browser, Path(scratch), logs, args.repeat)
                first, returning, starts = first_visits(browser, home, logs)
                by_url, by_click = warm_visits(browser, home, logs, args.repeat)
            finally:
                browser.close()
        probes, baseline = {}, {}
        if not args.no_baseline:
            probes = {title: import_probe(home, path) for title, (path, _) in PAGES.items()}
            baseline = apptest_baseline(home)
        return 0 if report(first, returning, starts, by_url, by_click, probes, baseline, floor) else 1


if __name__ == "__main__":
    sys.exit(main())
