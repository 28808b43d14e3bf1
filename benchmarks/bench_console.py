"""Console speed: every page's data load and render, timed with Streamlit's AppTest.

Goal (issue 8): each page under 1 s locally with 1M predictions. For each size the script
builds a local lakehouse in a temporary home with tests/console_lakehouse.py (contract-shaped
predictions, monitoring history, job runs and a registered champion and challenger; the
console tests use the same builder).

Then it runs every page with AppTest: once to warm up (imports, connections), then
``--repeat`` times each with the console's query caches cleared (``cold``: what a user
sees after the cache TTL or an action), with the DuckDB connection rebuilt as well (``new
table version``: the first load after a job wrote a table) and with the caches (``warm``),
and prints the median (and for cold the worst) time per page, plus the Score button::

    .venv/bin/python benchmarks/bench_console.py                       # 10k and 1M
    .venv/bin/python benchmarks/bench_console.py --sizes 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))       # the lakehouse builder the console tests use too
os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")   # AppTest outside a server logs every cache call

from console_lakehouse import build_lakehouse  # noqa: E402
from healthcare_mlops.settings import HOME_ENV  # noqa: E402

PAGES = ("overview", "risk", "fairness", "drift", "governance", "jobs", "score")
GOAL_SECONDS = 1.0


# -- timing -----------------------------------------------------------------------------------

def time_pages(repeat: int) -> dict:
    """Seconds per page after a warm-up pass: ``cold`` (the console's query caches cleared before
    each run), ``new version`` (also the DuckDB connection, as after a job wrote a table) and
    ``warm`` (cached results); and the Score page's Score button (first click loads the model)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app import data

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=600)
    at.run()
    results = {}
    for page in PAGES:                       # warm-up: imports, connections
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception, f"{page}: {at.exception[0].value}"
    for page in PAGES:
        at.switch_page(f"../pages/{page}.py")
        cold, rebuilt, warm = [], [], []
        for clear_engine, times in ((False, cold), (True, rebuilt), (None, warm)):
            for _ in range(repeat):
                if clear_engine is not None:
                    st.cache_data.clear()
                if clear_engine:
                    data._engine_cached.clear()
                start = time.perf_counter()
                at.run()
                times.append(time.perf_counter() - start)
                assert not at.exception, f"{page}: {at.exception[0].value}"
        results[page] = {"cold_median": statistics.median(cold), "cold_max": max(cold),
                         "rebuilt_median": statistics.median(rebuilt), "warm_median": statistics.median(warm)}
    at.switch_page("../pages/score.py").run()
    clicks = []
    for _ in range(repeat + 1):
        at.button(key="score_button").click()
        start = time.perf_counter()
        at.run()
        clicks.append(time.perf_counter() - start)
        assert not at.exception and at.metric, "the Score button showed no result"
    results["score: Score button"] = {"first": clicks[0], "median": statistics.median(clicks[1:])}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the lakehouses under this folder and keep them")
    args = parser.parse_args()
    os.environ.setdefault("HEALTHCARE_MLOPS_ROLE", "approver")
    table = {}
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            home = (args.keep or Path(scratch)) / f"console-{size}" / "lakehouse"
            start = time.perf_counter()
            build_lakehouse(home, size)
            print(f"built a lakehouse with {size:,} predictions in {time.perf_counter() - start:.1f} s: {home}",
                  flush=True)
            os.environ[HOME_ENV] = str(home)
            table[size] = time_pages(args.repeat)
    print()
    print("| page | " + " | ".join(f"{size:,}: cold median / max | {size:,}: new table version | {size:,}: warm"
                                 for size in table) + " |")
    print("|---|" + "---|---|---|" * len(table))
    worst = 0.0
    for page in PAGES:
        cells = []
        for size, results in table.items():
            r = results[page]
            worst = max(worst, r["cold_max"])
            cells.append(f"{r['cold_median']:.3f} s / {r['cold_max']:.3f} s | {r['rebuilt_median']:.3f} s | "
                         f"{r['warm_median']:.3f} s")
        print(f"| {page} | " + " | ".join(cells) + " |")
    for size, results in table.items():
        click = results["score: Score button"]
        print(f"\nScore button at {size:,}: first click (loads the champion) {click['first']:.3f} s, "
              f"then {click['median']:.3f} s")
    print(f"\nslowest cold page load: {worst:.3f} s; goal < {GOAL_SECONDS:.0f} s: "
          f"{'met' if worst < GOAL_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    main()
