"""The console in a real browser: started as ``healthcare-mlops app --port N`` starts it.

Headless Chromium (the Debian package) driven by Playwright's Python package opens every
page through the sidebar navigation, finds the page's title and no error box
(``stException``), and saves a screenshot per page under the test's temporary folder.

The lakehouse: contract-shaped synthetic predictions, monitoring and job runs, and a real
trained, validated and promoted model (benchmarks/bench_console.py), so every page has
something to draw.
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
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")
CONSOLE_SCRIPT = Path(sys.executable).with_name("healthcare-mlops")
PAGES = ("Overview", "Risk", "Fairness", "Drift", "Governance", "Jobs", "Score")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium is not installed (Debian: apt-get install -y chromium)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory) -> Path:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_console

    home = tmp_path_factory.mktemp("browser") / "lakehouse"
    bench_console.build_lakehouse(home, 10_000)
    return home


@pytest.fixture(scope="module")
def console_url(lakehouse, tmp_path_factory):
    """``healthcare-mlops --home H app --port N`` in its own process; its address once it answers."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("browser-log") / "console.log"
    env = {**os.environ, "HEALTHCARE_MLOPS_USER": "browser@example.com", "HEALTHCARE_MLOPS_ROLE": "approver"}
    env.pop("HEALTHCARE_MLOPS_HOME", None)
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(CONSOLE_SCRIPT), "--home", str(lakehouse), "app", "--port", str(port)],
                                   cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the console did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        printed = log_path.read_text()
        assert f"console: {url}" in printed, printed
        yield url
    finally:
        process.terminate()                 # the command stops its Streamlit server
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_every_page_opens_in_chromium_without_an_error(console_url, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(console_url)
            links = page.locator('[data-testid="stSidebarNav"] a')
            links.first.wait_for(timeout=120_000)
            titles = [links.nth(i).inner_text().strip().splitlines()[-1].strip() for i in range(links.count())]
            assert titles == list(PAGES)
            for index, title in enumerate(titles):
                page.locator('[data-testid="stSidebarNav"] a').nth(index).click()
                page.locator("h1", has_text=title).first.wait_for(timeout=120_000)
                page.wait_for_timeout(300)
                page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
                page.wait_for_timeout(500)
                assert page.locator('[data-testid="stException"]').count() == 0, \
                    f"{title}: {page.locator('[data-testid=stException]').first.inner_text()}"
                assert page.locator('[data-testid="stMain"] h1').first.inner_text().strip() == title
                page.screenshot(path=str(shots / f"{index + 1}-{title.lower()}.png"), full_page=True)
            assert page.get_by_text("browser@example.com").count() >= 1
        finally:
            browser.close()
    saved = sorted(p.name for p in shots.iterdir())
    assert len(saved) == len(PAGES), saved
    print(f"screenshots: {shots}")
