"""Where one ``data ingest`` spends its time and memory: each step's wall time, CPU seconds and RSS.

Issue 26's trace (benchmarks/README.md, "Where the 10M load goes"): writes the benchmark's CSV
(``bench_ingest.write_csv``), then runs ``data ingest`` on it in a fresh process in which the
steps of the laptop's member load (staging, DuckDB's judgement and its Parquet results, each
table write, the dim_patients merge) print, at their start and end, the seconds since start, the
process's CPU seconds and its resident memory; the parent samples the process tree's RSS every
0.1 s (Linux only) and prints the peak.

    .venv/bin/python benchmarks/trace_ingest.py --rows 10000000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_ingest import tree_rss, write_csv

# Run in the child: wraps the steps, then runs the CLI.
CHILD = r"""
import functools, resource, sys, time
started = time.perf_counter()

def mark(label):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6
    print(f"[{time.perf_counter() - started:7.2f} s  CPU {usage.ru_utime + usage.ru_stime:6.2f} s  "
          f"RSS {rss:6.0f} MB] {label}", file=sys.stderr, flush=True)

def traced(owner, name, label=None):
    original = getattr(owner, name)
    @functools.wraps(original)
    def step(*args, **kwargs):
        shown = label or (f"write {args[2]}" if name == "write" else name)
        mark("> " + shown)
        try:
            return original(*args, **kwargs)
        finally:
            mark("< " + shown)
    setattr(owner, name, step)

import healthcare_mlops.data.csv_source as csv_source
import healthcare_mlops.runtime.arrow_member_load as arrow_load
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
mark("imported")
traced(csv_source, "_stage", "staging")
traced(arrow_load, "_judged", "DuckDB: judged rows")
traced(arrow_load, "_to_parquet", "DuckDB: results to Parquet")
traced(arrow_load, "merge_dim_patients", "dim_patients merge")
traced(DeltaCatalog, "write")
arrow_load.ARROW_STEPS = arrow_load.ARROW_STEPS.__class__(
    select=arrow_load.ARROW_STEPS.select, merge_dim=arrow_load.merge_dim_patients,
    dim_counts=arrow_load.ARROW_STEPS.dim_counts)
from healthcare_mlops.cli.main import run
run()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trace-ingest-") as folder:
        csv_path = Path(folder) / "members.csv"
        write_csv(csv_path, args.rows)
        print(f"{args.rows:,} rows; load average {os.getloadavg()[0]:.1f}", flush=True)
        env = {**os.environ, "HEALTHCARE_MLOPS_HOME": str(Path(folder) / "home")}
        started, peak = time.perf_counter(), 0
        process = subprocess.Popen([sys.executable, "-c", CHILD, "data", "ingest", str(csv_path), "--as-of",
                                    "2025-03-01", "--format", "json"], env=env, stdout=subprocess.DEVNULL)
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.1)
    if process.returncode != 0:
        raise SystemExit(f"data ingest failed (exit {process.returncode})")
    print(f"wall {time.perf_counter() - started:.1f} s, peak RSS of the process tree {peak / 1e6:,.0f} MB; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
