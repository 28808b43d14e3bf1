"""Benchmark: the test suite's JVM options (tests/jvm_options.py) against the JVM's defaults.

The suite runs on two cores and is CPU-bound: what a short Spark process spends in CPU is what
the suite waits for. Each run here is a fresh process as the suite starts them: local Spark, then
``data generate``'s code for N members and the feature job into a new home. It runs once with the
JVM's defaults and once with the suite's options, alternating, and counts each run's CPU seconds
exactly (the Python process's own and its JVM's, from ``/proc``), so other work on the machine
moves the wall times but hardly the CPU seconds.

    .venv/bin/python benchmarks/bench_test_jvm.py                 # 3 runs of each, 2,000 members
    .venv/bin/python benchmarks/bench_test_jvm.py --runs 5 --members 20000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))       # the options the suite's conftest.py applies
from jvm_options import SUBMIT_OPTS_ENV, TEST_JVM_OPTIONS  # noqa: E402

PROBE = textwrap.dedent("""
    import datetime as dt, json, os, resource, sys, time
    started = time.perf_counter()
    from healthcare_mlops.composition import build_runtime, cli_runtime
    from healthcare_mlops.runtime.spark_session import get_spark
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tasks import feature_engineering
    from healthcare_mlops.tasks.load_members import generate_patients

    home, members = sys.argv[1], int(sys.argv[2])
    as_of = dt.date(2026, 1, 1)
    settings = resolve_settings("local", home)
    generate_patients(cli_runtime(settings), members, 42, as_of)
    feature_engineering.run(build_runtime(settings), as_of)
    spark = get_spark()
    jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    fields = open(f"/proc/{jvm_pid}/stat").read().rsplit(")", 1)[1].split()
    jvm_cpu = sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")   # utime stime cutime cstime
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": time.perf_counter() - started, "python_cpu": own.ru_utime + own.ru_stime,
                      "jvm_cpu": jvm_cpu}))
    """)

VARIANTS = (("JVM defaults", ""), ("suite's options", TEST_JVM_OPTIONS))


def run_probe(options: str, members: int) -> dict:
    """One fresh process with ``options`` as SPARK_SUBMIT_OPTS; its wall and CPU seconds."""
    environment = {**os.environ, SUBMIT_OPTS_ENV: options, "HEALTHCARE_MLOPS_SPARK_API": "classic",
                   "HEALTHCARE_MLOPS_SHUFFLE_PARTITIONS": "4"}      # as conftest.py sets them
    with tempfile.TemporaryDirectory(prefix="hc-bench-jvm-") as home:
        result = subprocess.run([sys.executable, "-c", PROBE, home, str(members)], capture_output=True, text=True,
                                env=environment, cwd=str(REPO), timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"the probe failed with SPARK_SUBMIT_OPTS={options!r}:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return {**measured, "cpu": measured["python_cpu"] + measured["jvm_cpu"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant, alternating (default 3)")
    parser.add_argument("--members", type=int, default=2000, help="members generated and featurized (default 2000)")
    args = parser.parse_args(argv)

    print(f"load average at start: {os.getloadavg()[0]:.1f}; {args.members} members; {args.runs} runs each", flush=True)
    results: dict[str, list[dict]] = {name: [] for name, _ in VARIANTS}
    for index in range(args.runs):
        order = VARIANTS if index % 2 == 0 else VARIANTS[::-1]
        for name, options in order:
            measured = run_probe(options, args.members)
            results[name].append(measured)
            print(f"run {index + 1} {name:>16}: {measured['wall']:6.1f} s wall, {measured['cpu']:6.1f} CPU s "
                  f"(JVM {measured['jvm_cpu']:.1f}, Python {measured['python_cpu']:.1f})", flush=True)
    medians = {name: {key: statistics.median(run[key] for run in runs) for key in ("wall", "cpu")}
               for name, runs in results.items()}
    (base, _), (ours, _) = VARIANTS
    for key, label in (("cpu", "CPU seconds"), ("wall", "wall seconds")):
        print(f"median {label}: {medians[base][key]:.1f} -> {medians[ours][key]:.1f} "
              f"(ratio {medians[ours][key] / medians[base][key]:.2f})")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
