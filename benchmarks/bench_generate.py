"""Benchmark: generate and store N synthetic members (``data generate``'s code path).

The issue's speed goal: 1M members generated and stored in under 2 minutes on a 2-core,
24 GB machine. For each size this runs ``generate_patients`` (generate in Spark,
validate, write silver_patients, quarantine and dim_patients as Delta tables) into a
fresh temporary home and prints the wall-clock seconds and rows per second.

    .venv/bin/python benchmarks/bench_generate.py                 # 100k and 1M
    .venv/bin/python benchmarks/bench_generate.py --sizes 100000  # one size

The Spark session is started (and warmed up with a tiny load) before timing, and its
start-up time is printed separately: a job pays it once, not per million rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

GOAL_ROWS = 1_000_000
GOAL_SECONDS = 120.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="member counts to generate (default: 100000 1000000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2025-01-01")
    parser.add_argument("--later", action="store_true",
                        help="also time a second as-of date on each population (the daily load: "
                             "carry every member forward, 1 %% new members)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes")
    args = parser.parse_args(argv)
    as_of = dt.date.fromisoformat(args.as_of)

    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.composition import cli_runtime
    from healthcare_mlops.tasks.load_members import generate_patients
    from healthcare_mlops.runtime.spark_session import get_spark

    started = time.perf_counter()
    spark = get_spark()
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory(prefix="hc-bench-warmup-") as warm:
        generate_patients(cli_runtime(resolve_settings("local", warm)), 100, args.seed, as_of)
    print(f"spark start-up + warm-up: {time.perf_counter() - started:.1f} s "
          f"(cores: {os.cpu_count()})", flush=True)

    print(f"{'members':>10} {'seconds':>9} {'rows/s':>10}  loaded  quarantined", flush=True)
    results = {}
    for size in args.sizes:
        root = Path(tempfile.mkdtemp(prefix=f"hc-bench-{size}-"))
        t0 = time.perf_counter()
        report = generate_patients(cli_runtime(resolve_settings("local", root)), size, args.seed, as_of)
        seconds = time.perf_counter() - t0
        results[size] = seconds
        print(f"{size:>10,} {seconds:>9.1f} {size / seconds:>10,.0f}  {report.rows_loaded:>6,} "
              f"{report.rows_quarantined:>12,}", flush=True)
        if report.rows_in != size:
            print(f"error: expected {size} rows in, got {report.rows_in}", file=sys.stderr)
            return 1
        if args.later:
            joiners = max(1, size // 100)
            t0 = time.perf_counter()
            later = generate_patients(cli_runtime(resolve_settings("local", root)), joiners, args.seed,
                                      as_of + dt.timedelta(days=30))
            seconds = time.perf_counter() - t0
            print(f"{later.rows_in:>10,} {seconds:>9.1f} {later.rows_in / seconds:>10,.0f}  "
                  f"{later.rows_loaded:>6,} {later.rows_quarantined:>12,}  (later load: "
                  f"{size:,} carried forward + {joiners:,} new)", flush=True)
        if not args.keep:
            import shutil
            shutil.rmtree(root, ignore_errors=True)

    if GOAL_ROWS in results:
        seconds = results[GOAL_ROWS]
        verdict = "met" if seconds < GOAL_SECONDS else "NOT met"
        print(f"goal (1M members in < {GOAL_SECONDS:.0f} s): {verdict} ({seconds:.1f} s)")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
