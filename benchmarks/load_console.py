"""Load test of the console: concurrent browser sessions clicking through every page.

Goal (issue 15): with 10 sessions for 2 minutes, every page's p95 < 2 s and no error. The
console is started as a user starts it (``healthcare-mlops --home H app --port N``, loopback
only) on bench_console.py's lakehouse (1M predictions by default, or ``--home``). Each
session is a Playwright browser context (its own cookies and Streamlit session) in headless
Chromium; ``--browsers`` Chromium processes share the sessions (on a small machine fewer
processes with several contexts each cost less than one process per session). A session
starts ``--ramp`` seconds after the previous one, opens the Overview by URL, then clicks the
sidebar links in page order, round and round, until ``--duration`` is over (a click in
flight finishes). Each click is timed until the page is drawn to its last element
(tests/console_browser.py, the browser benchmark's definition); an error box, a
timeout (``--timeout``) or a failed navigation is an error, after which the session opens
the next page by URL (those loads are reported on their own row).

With ``--client websocket`` the sessions are not browsers but Streamlit's own protocol on
its websocket (what a sidebar click sends, timed until the server reports the script run
finished; a run must draw the page's title and no error box): the server's work alone, for
a machine where Chromium would take most of the CPU itself.

It reports p50 / p95 / worst per page, errors, the server's memory (resident, the whole
process tree) at start, after the first round and at the end, and the CPU seconds the
server and the client (Playwright and Chromium) used: when the client's share is large, the
latencies include the client's own waiting for CPU (read them as upper bounds).

    .venv/bin/python benchmarks/load_console.py                               # 10 sessions, 120 s, 1M rows
    .venv/bin/python benchmarks/load_console.py --home /tmp/lh --sessions 10 --duration 60 --browsers 2
    .venv/bin/python benchmarks/load_console.py --home /tmp/lh --client websocket      # no browser
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the browser harness the browser test uses
from console_browser import CHROMIUM, CHROMIUM_ARGS, DEFAULT_PAGE, PAGES, RENDERED_JS, VIEWPORT, CpuClock, \
    lakehouse, lakehouse_arguments, page_address, process_tree, running_console  # noqa: E402

P95_GOAL = 2.0
MIB = 1024 * 1024


class Tally:
    """Click timings and errors per page, shared by the sessions (one event loop: no locks)."""

    def __init__(self, think: float) -> None:
        self.think = think                  # seconds a session waits after each page, as a reader would
        self.seconds: dict[str, list[float]] = {title: [] for title in PAGES}
        self.errors: dict[str, list[str]] = {title: [] for title in PAGES}
        self.loads: list[float] = []        # a page opened by URL: a session's start, or after an error
        self.first_round_done = asyncio.Event()
        self.rounds = 0


async def _drawn(page, title: str, timeout_s: float) -> None:
    await page.wait_for_function(RENDERED_JS, arg=[title, PAGES[title][1]], timeout=timeout_s * 1000, polling=50)
    boxes = page.locator('[data-testid="stException"]')
    if await boxes.count():
        raise RuntimeError(f"error box: {(await boxes.first.inner_text())[:200]}")


async def session(browser, url: str, deadline: float, timeout_s: float, tally: Tally, delay: float) -> None:
    """One user, starting after ``delay`` s: a page by URL, then sidebar clicks through the pages until
    the deadline. A failed click counts as an error and the next page is loaded by URL again."""
    await asyncio.sleep(delay)
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    titles, index, loaded = list(PAGES), 0, False
    try:
        while time.monotonic() < deadline:
            title = titles[index % len(titles)]
            start = time.perf_counter()
            try:
                if loaded:
                    # a DOM click: Playwright's mouse click waits for animation frames, which a browser
                    # drawing several contexts at once may not give a page in the background
                    await page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.dispatch_event("click")
                else:
                    await page.goto(page_address(url, title))
                await _drawn(page, title, timeout_s)
                (tally.seconds[title] if loaded else tally.loads).append(time.perf_counter() - start)
                loaded = True
            except Exception as exc:  # noqa: BLE001  # any failure is counted and reported as an error
                tally.errors[title].append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                loaded = False
            index += 1
            await asyncio.sleep(tally.think)
            if index % len(titles) == 0:
                tally.rounds += 1
                tally.first_round_done.set()
    finally:
        await context.close()


async def _script_run(socket, title: str, timeout_s: float) -> None:
    """Read the server's messages until the script run finishes; an error box, or a run that did not
    draw ``title``'s page, is an error."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    async def until_finished() -> None:
        drawn = False
        while True:
            message = ForwardMsg.FromString(await socket.recv())
            kind = message.WhichOneof("type")
            element = message.delta.new_element if kind == "delta" else None
            if element is not None and element.WhichOneof("type") == "exception":
                raise RuntimeError(f"error box: {element.exception.message[:200]}")
            if element is not None and element.WhichOneof("type") == "heading":
                drawn = drawn or element.heading.body == title
            if kind == "script_finished":
                if not drawn:
                    raise RuntimeError(f"the run did not draw the {title} page")
                return

    await asyncio.wait_for(until_finished(), timeout_s)


async def websocket_session(url: str, deadline: float, timeout_s: float, tally: Tally, delay: float) -> None:
    """One user without a browser: Streamlit's own protocol on its websocket, asking for each page in
    turn (what a sidebar click sends) and timing until the server reports the script run finished.
    The server does the same work as for a browser; nothing is drawn."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg

    await asyncio.sleep(delay)
    titles, index = list(PAGES), 0
    async with websockets.connect(url.replace("http://", "ws://") + "/_stcore/stream", origin=url,
                                  subprotocols=["streamlit"], max_size=None) as socket:
        while time.monotonic() < deadline:
            title = titles[index % len(titles)]
            request = BackMsg()
            request.rerun_script.page_name = "" if title == DEFAULT_PAGE else PAGES[title][0]
            start = time.perf_counter()
            try:
                await socket.send(request.SerializeToString())
                await _script_run(socket, title, timeout_s)
                tally.seconds[title].append(time.perf_counter() - start)
            except (RuntimeError, asyncio.TimeoutError) as exc:
                tally.errors[title].append(f"{type(exc).__name__}: {str(exc)[:200]}")
            index += 1
            await asyncio.sleep(tally.think)
            if index % len(titles) == 0:
                tally.rounds += 1
                tally.first_round_done.set()


async def run_load(url: str, server_pid: int, sessions: int, browsers: int, duration: float,
                   timeout_s: float, ramp: float, client: str, think: float) -> dict:
    from playwright.async_api import async_playwright

    tally = Tally(think)
    memory = {"start": process_tree(server_pid)[0]}
    async with async_playwright() as playwright:
        launched = [await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    for _ in range(browsers if client == "browser" else 0)]
        server_cpu, client_cpu = CpuClock(server_pid), CpuClock(os.getpid(), without=server_pid)
        started = time.monotonic()
        deadline = started + duration
        tasks = [asyncio.create_task(
            session(launched[i % browsers], url, deadline, timeout_s, tally, i * ramp) if client == "browser"
            else websocket_session(url, deadline, timeout_s, tally, i * ramp)) for i in range(sessions)]

        async def after_first_round() -> None:
            await tally.first_round_done.wait()
            memory["after first round"] = process_tree(server_pid)[0]

        watcher = asyncio.create_task(after_first_round())
        results = await asyncio.gather(*tasks, return_exceptions=True)
        watcher.cancel()
        elapsed = time.monotonic() - started
        cpu = {"server": server_cpu.seconds(), "client": client_cpu.seconds()}
        for browser in launched:
            await browser.close()
    memory["end"] = process_tree(server_pid)[0]
    failed_sessions = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return {"tally": tally, "memory": memory, "cpu": cpu, "elapsed": elapsed, "failed_sessions": failed_sessions}


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) >= 2 else values[0]


def report(result: dict, sessions: int, clients: str) -> bool:
    tally = result["tally"]
    print(f"\n{sessions} sessions as {clients}, {tally.think:g} s between pages, {result['elapsed']:.0f} s, "
          f"{tally.rounds} rounds through the {len(PAGES)} pages in all\n")
    print("| page | clicks | p50 (s) | p95 (s) | worst (s) | errors |")
    print("|---|---|---|---|---|---|")
    worst_p95, errors = 0.0, 0
    for title in PAGES:
        times, failed = tally.seconds[title], tally.errors[title]
        errors += len(failed)
        if times:
            worst_p95 = max(worst_p95, _p95(times))
            print(f"| {title} | {len(times)} | {statistics.median(times):.2f} | {_p95(times):.2f} | "
                  f"{max(times):.2f} | {len(failed)} |")
        else:
            print(f"| {title} | 0 | - | - | - | {len(failed)} |")
    if tally.loads:
        print(f"| (a page opened by URL) | {len(tally.loads)} | {statistics.median(tally.loads):.2f} | "
              f"{_p95(tally.loads):.2f} | {max(tally.loads):.2f} | |")
    for title in PAGES:
        for message in tally.errors[title][:3]:
            print(f"error on {title}: {message}")
    for message in result["failed_sessions"]:
        print(f"a session stopped: {message}")
    memory = result["memory"]
    print("\nserver memory (resident, process tree): " + ", ".join(f"{k} {v / MIB:,.0f} MiB" for k, v in memory.items())
          + f"; growth {(memory['end'] - memory['start']) / MIB:+,.0f} MiB")
    cpu, cores = result["cpu"], os.cpu_count() or 1
    print(f"CPU seconds used: server {cpu['server']:.0f} s, client (Playwright and Chromium) {cpu['client']:.0f} s, "
          f"of {result['elapsed'] * cores:.0f} s on {cores} cores: the client used "
          f"{cpu['client'] / max(cpu['server'] + cpu['client'], 1e-9):.0%} of the CPU the test took")
    met = worst_p95 < P95_GOAL and errors == 0 and not result["failed_sessions"]
    print(f"\nslowest page p95 {worst_p95:.2f} s (goal < {P95_GOAL:g} s), {errors} errors (goal 0): "
          f"{'met' if met else 'NOT met'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    lakehouse_arguments(parser)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--browsers", type=int, default=2, help="Chromium processes the sessions share")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of clicking")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a click counts as an error")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds between the sessions' starts")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds a session waits after each page (0: click as soon as the page is drawn)")
    parser.add_argument("--client", choices=("browser", "websocket"), default="browser",
                        help="browser: Chromium contexts; websocket: Streamlit's protocol without a browser "
                             "(the server's work alone, when browsers would load the machine more than the server)")
    args = parser.parse_args()
    os.environ.setdefault("HEALTHCARE_MLOPS_ROLE", "approver")
    with tempfile.TemporaryDirectory() as scratch:
        home = lakehouse(args, scratch)
        with running_console(home, Path(scratch) / "console.log") as (url, process):
            print(f"console {url} (pid {process.pid}); {args.sessions} sessions for {args.duration:g} s", flush=True)
            result = asyncio.run(run_load(url, process.pid, args.sessions, max(1, args.browsers), args.duration,
                                          args.timeout, args.ramp, args.client, args.think))
    clients = f"{max(1, args.browsers)} Chromium process(es)" if args.client == "browser" else "websocket clients"
    return 0 if report(result, args.sessions, clients) else 1


if __name__ == "__main__":
    sys.exit(main())
