"""``data ingest`` against DuckDB's ``read_csv`` on the same CSV: rows per second and peak memory.

Issues 13 and 26: a 10M-row CSV must load within a fixed memory (goal: the process tree at
most 2 GB) at a quarter of DuckDB's rows per second or better, the whole load counted. For
each size in ``--rows`` the script writes one CSV in the public insurance format (one
malformed line and one out-of-range age per 100,000 so the quarantine path runs too), then,
one after the other in the same run, times two commands, each in its own process on a fresh
folder:

- ours: ``healthcare-mlops data ingest <file>`` (streaming parse to a staged Parquet, then on a
  laptop the validation, keys, quarantine and SCD2 merge in DuckDB over Arrow, no Spark:
  ``runtime/arrow_member_load.py``; the quarantine, silver_patients and dim_patients written to
  Delta, framed by the load journal);
- anchor: DuckDB ``CREATE TABLE members AS SELECT * FROM read_csv(<file>)`` into a
  database file (parse and store, no validation).

Peak memory is the largest sum of resident set sizes over the command's whole process
tree (a JVM included, if any started), sampled from /proc every 0.1 s, so Linux only. Both
times include the process start-up. Before the sizes, the same ``data ingest`` of a one-row
file gives the floor: what any load costs whatever its size (interpreter, imports, the
Delta commits). The last lines print the ratios (by wall time and by CPU seconds, which a shared
machine's load inflates less), and with two sizes
the larger's time per row over the smaller's.

    .venv/bin/python benchmarks/bench_ingest.py --rows 1000000 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEADER = "age,sex,bmi,children,smoker,region,charges"
REGIONS = np.array(["northeast", "northwest", "southeast", "southwest"])
CHUNK = 1_000_000
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def write_csv(path: Path, rows: int, seed: int = 13) -> None:
    """``rows`` data lines, written a chunk at a time (the generator's memory stays small too)."""
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER + "\n")
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            age = rng.integers(18, 65, n)
            age[(np.arange(start, start + n) % 100_000) == 7] = 230            # quarantined: out of range
            lines = [f"{a},{s},{b:.2f},{c},{m},{r},{ch:.2f}" for a, s, b, c, m, r, ch in zip(
                age, np.where(rng.random(n) < 0.5, "female", "male"), rng.normal(30.7, 6.1, n).clip(16, 53),
                rng.integers(0, 6, n), np.where(rng.random(n) < 0.2, "yes", "no"), REGIONS[rng.integers(0, 4, n)],
                rng.lognormal(9.1, 0.9, n))]
            for index in range(99_999, n, 100_000):
                lines[index] = "1,2,3"                                          # quarantined: malformed
            out.write("\n".join(lines) + "\n")


def tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and all its descendants now (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            pages = int(Path(f"/proc/{entry}/statm").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue                                   # the process ended while we looked
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
        rss[int(entry)] = pages * PAGE_BYTES
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measure(command: list[str], env: dict) -> tuple[float, int, str, float]:
    """(seconds, peak bytes of the process tree, stdout, CPU seconds) of ``command``; fails loudly if it fails.

    CPU seconds (user + system of the command and the children it waited for) do not grow with
    the machine's load the way the wall time does: the fairer ratio on a shared machine."""
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} ... failed (exit {process.returncode}):\n{stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, peak, stdout, cpu


def ingest_command(csv_path: Path) -> list[str]:
    return [sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()", "data", "ingest",
            str(csv_path), "--as-of", "2025-03-01", "--format", "json"]


def run_size(root: Path, rows: int) -> tuple[float, float]:
    """Write a ``rows`` CSV, load it both ways, print the figures; (our seconds, DuckDB's seconds)."""
    csv_path = root / f"members_{rows}.csv"
    write_csv(csv_path, rows)
    print(f"\n{rows:,} rows, {csv_path.stat().st_size / 1e6:,.0f} MB CSV; load average {os.getloadavg()[0]:.1f}")
    ours = measure(ingest_command(csv_path), {**os.environ, "HEALTHCARE_MLOPS_HOME": str(root / f"home_{rows}")})
    report = json.loads(ours[2])
    assert report["rows_in"] == rows == report["rows_loaded"] + report["rows_quarantined"], report
    anchor_code = ("import duckdb, sys; con = duckdb.connect(sys.argv[2]); "
                   "con.execute('SET enable_progress_bar = false'); "
                   "con.execute('CREATE TABLE members AS SELECT * FROM read_csv(?, ignore_errors=true)', "
                   "[sys.argv[1]]); print(con.execute('SELECT count(*) FROM members').fetchone()[0])")
    anchor = measure([sys.executable, "-c", anchor_code, str(csv_path), str(root / f"anchor_{rows}.duckdb")],
                     dict(os.environ))
    csv_path.unlink()
    print(f"{'':24}{'seconds':>10}{'rows/s':>12}{'peak RSS MB':>14}{'CPU s':>10}")
    for name, (seconds, peak, _, cpu) in (("ours (data ingest)", ours), ("duckdb read_csv", anchor)):
        print(f"{name:24}{seconds:>10.1f}{rows / seconds:>12,.0f}{peak / 1e6:>14,.0f}{cpu:>10.1f}")
    print(f"loaded {report['rows_loaded']:,}, quarantined {report['rows_quarantined']:,}; "
          f"duckdb kept {int(anchor[2]):,} (it drops malformed lines)")
    print(f"ours / duckdb: rows/s {anchor[0] / ours[0]:.3f}x (goal >= 0.25x), peak RSS {ours[1] / anchor[1]:.1f}x; "
          f"ours peak {ours[1] / 1e9:.2f} GB (goal <= 2 GB); by CPU seconds {anchor[3] / ours[3]:.3f}x")
    return ours[0], anchor[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    args = parser.parse_args()
    print(f"driver memory {os.environ.get('HEALTHCARE_MLOPS_DRIVER_MEMORY', '4g')}; "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        root = Path(folder)
        write_csv(root / "one_row.csv", 1)
        floor = measure(ingest_command(root / "one_row.csv"),
                        {**os.environ, "HEALTHCARE_MLOPS_HOME": str(root / "floor")})
        print(f"floor (a one-row file): {floor[0]:.1f} s, peak RSS {floor[1] / 1e6:,.0f} MB, CPU {floor[3]:.1f} s")
        timings = {rows: run_size(root, rows) for rows in sorted(args.rows)}
    if len(timings) >= 2:
        (small, (ours_small, _)), (large, (ours_large, _)) = list(timings.items())[0], list(timings.items())[-1]
        without_floor = ((ours_large - floor[0]) / large) / ((ours_small - floor[0]) / small)
        print(f"\nper-row time {large:,} / {small:,}: {(ours_large / large) / (ours_small / small):.2f} "
              f"(with the floor taken off: {without_floor:.2f})")


if __name__ == "__main__":
    main()
