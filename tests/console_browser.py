"""The console in headless Chromium: start ``healthcare-mlops app``, know when a page is drawn.

Shared by the browser test (test_console_browser.py), the browser benchmark
(benchmarks/bench_console_browser.py) and the load test (benchmarks/load_console.py), so the
three agree on how the console is started (the command a user types) and on what "the page is rendered" means:

* the page's title (``h1``) is shown,
* the page's LAST element (``PAGES``: the key of what the page script draws last) is
  visible, and every chart on the page (Vega-Lite) has drawn its marks (its SVG or canvas),
* the script run has finished: the app's ``data-test-script-state`` (which Streamlit keeps for
  its own browser tests) is ``notRunning`` and the running indicator (``stStatusWidget``) is
  gone; no element is stale, and no element is still a placeholder (``stSkeleton``: Streamlit
  loads a widget's code on first use and shows a placeholder meanwhile).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CONSOLE_SCRIPT = Path(sys.executable).with_name("healthcare-mlops")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1440, "height": 1000}     # the width the key columns must fit (issue 29)
# page title -> (page name: file in pages/ and url path, the key of the element the page script draws
# last, for an approver); the first is app/main.py's default page, served at the root. ``<key>_shown``:
# the container of the view a page shows on arrival (ui.views), below everything else the page draws.
PAGES = {
    "Overview": ("overview", "overview_runs"),
    "Risk": ("risk", "risk_download"),
    "Fairness": ("fairness", "fairness_view_shown"),
    "Drift": ("drift", "drift_view_shown"),
    "Governance": ("governance", "gov_view_shown"),
    "Jobs": ("jobs", "jobs_view_shown"),
    "Score": ("score", "score_button"),
}
DEFAULT_PAGE = next(iter(PAGES))
# The floor: Streamlit's own cost of drawing a page in this browser (bench_console_browser.py).
BARE_PAGE = ("Bare Streamlit page", "bare_last")
BARE_PAGE_SCRIPT = f"""import streamlit as st
st.title({BARE_PAGE[0]!r})
st.dataframe({{"category": ["low", "medium", "high", "critical"], "members": [400000, 300000, 200000, 100000]}})
st.button("Done", key={BARE_PAGE[1]!r})
"""
RENDERED_JS = """([title, key]) => {
  const h1 = [...document.querySelectorAll('[data-testid="stMain"] h1')].some(h => h.innerText.trim() === title);
  const last = document.querySelector('.st-key-' + key);
  if (!h1 || !last || last.getBoundingClientRect().height === 0) return false;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testScriptState !== 'notRunning') return false;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  if (document.querySelector('[data-stale="true"]')) return false;
  if (document.querySelector('[data-testid="stMain"] [data-testid="stSkeleton"]')) return false;
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  return charts.every(c => c.querySelector('svg.marks, canvas.marks'));
}"""


def lakehouse_arguments(parser) -> None:
    """The options every browser script takes: a lakehouse to use, or how many predictions to build."""
    parser.add_argument("--home", type=Path, help="an existing lakehouse (console_lakehouse.build_lakehouse) to use")
    parser.add_argument("--predictions", type=int, default=1_000_000, help="rows to build without --home")


def lakehouse(args, scratch: str) -> Path:
    """``--home``, or a lakehouse of ``--predictions`` rows built under ``scratch`` (console_lakehouse.py)."""
    if args.home is not None:
        return args.home
    from console_lakehouse import build_lakehouse

    home = Path(scratch) / "lakehouse"
    start = time.perf_counter()
    build_lakehouse(home, args.predictions)
    print(f"built a lakehouse with {args.predictions:,} predictions in {time.perf_counter() - start:.1f} s",
          flush=True)
    return home


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def console_env(user: str = "browser@example.com", role: str = "approver") -> dict:
    env = {**os.environ, "HEALTHCARE_MLOPS_USER": user, "HEALTHCARE_MLOPS_ROLE": role}
    env.pop("HEALTHCARE_MLOPS_HOME", None)
    return env


@contextmanager
def running_console(home: Path, log_path: Path, timeout: float = 120.0, env: dict | None = None,
                    port: int | None = None):
    """``healthcare-mlops --home H app --port N`` in its own process group; yields (url, process).

    Ready when ``/_stcore/health`` answers; stopped (terminate, then kill) on exit. ``port``: a free one
    unless given (the same port again is the same origin for a browser's cache).
    """
    port = port or free_port()
    command = [str(CONSOLE_SCRIPT), "--home", str(home), "app", "--port", str(port)]
    with running_server(command, port, log_path, timeout, env or console_env()) as started:
        yield started


@contextmanager
def running_bare_page(folder: Path, log_path: Path, timeout: float = 120.0):
    """Streamlit itself, on a page with a title, a small table and a button (``BARE_PAGE``), started
    from the checkout (its .streamlit/config.toml) like the console: the floor under every page's time."""
    script = folder / "bare_page.py"
    script.write_text(BARE_PAGE_SCRIPT)
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with running_server(command, port, log_path, timeout, console_env()) as started:
        yield started


@contextmanager
def running_server(command: list[str], port: int, log_path: Path, timeout: float, env: dict):
    """``command`` (a Streamlit server on ``port``) from the checkout in its own process group; yields
    (url, process) once ``/_stcore/health`` answers; stopped (terminate, then kill) on exit."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:  # nosec B310  # loopback
                    if response.status == 200:
                        break
            except OSError:                 # not listening yet: poll again until the deadline
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()                 # the command stops its Streamlit server
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_rendered(page, title: str, timeout_ms: float = 120_000) -> None:
    """Block until ``title``'s page is drawn to its last element and its script run has ended."""
    last = BARE_PAGE[1] if title == BARE_PAGE[0] else PAGES[title][1]
    page.wait_for_function(RENDERED_JS, arg=[title, last], timeout=timeout_ms, polling=50)


def errors_on_page(page) -> list[str]:
    """The text of every Streamlit error box (``stException``) on the page, and of a "Page not found"
    dialog (an address that names no page: Streamlit then runs the default page under the dialog)."""
    boxes = page.locator('[data-testid="stException"]')
    dialogs = page.locator('[role="dialog"]', has_text="Page not found")
    return [boxes.nth(i).inner_text() for i in range(boxes.count())] + \
        [dialogs.nth(i).inner_text() for i in range(dialogs.count())]


def page_address(url: str, title: str) -> str:
    """The address of ``title``'s page: the default page (the first) is the console's root, as its
    sidebar link is; Streamlit knows it by no other path."""
    return f"{url}/" if title == DEFAULT_PAGE else f"{url}/{PAGES[title][0]}"


def sidebar_link(page, title: str):
    return page.locator('[data-testid="stSidebarNav"] a', has_text=title).first


def _process_table() -> dict[int, tuple[int, int, float]]:
    """pid -> (parent pid, resident bytes, CPU seconds used) of every process, from /proc."""
    table = {}
    ticks, page_size = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            resident = int((entry / "statm").read_text().split()[1])
        except OSError:                     # the process ended meanwhile
            continue
        table[int(entry.name)] = (int(fields[1]), resident * page_size, (int(fields[11]) + int(fields[12])) / ticks)
    return table


def _tree(pid: int, without: int | None = None) -> dict[int, tuple[int, float]]:
    """pid -> (resident bytes, CPU seconds) of ``pid`` and all its descendants, leaving out the tree of
    ``without`` (the console a script started is its child, not its browser)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = {}, [pid]
    while todo:
        current = todo.pop()
        if current == without:
            continue
        if current in table:
            found[current] = table[current][1:]
        todo += children.get(current, [])
    return found


def process_tree(pid: int, without: int | None = None) -> tuple[int, float]:
    """Resident memory (bytes) and CPU seconds used so far by ``pid`` and all its descendants, leaving
    out the tree of ``without``."""
    tree = _tree(pid, without).values()
    return sum(resident for resident, _ in tree), sum(cpu for _, cpu in tree)


class CpuClock:
    """CPU seconds a process tree uses from its start on, counted per process: a process that ends
    meanwhile (the renderer of a tab closed just before) drops out of the sum instead of taking its
    whole past CPU with it, which made a difference of two totals negative."""

    def __init__(self, pid: int, without: int | None = None) -> None:
        self.pid, self.without = pid, without
        self.start = {child: cpu for child, (_, cpu) in _tree(pid, without).items()}

    def seconds(self) -> float:
        return sum(cpu - self.start.get(child, 0.0) for child, (_, cpu) in _tree(self.pid, self.without).items())
