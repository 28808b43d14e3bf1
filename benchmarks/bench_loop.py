"""Benchmark: the whole loop, generate -> features -> training -> governance -> batch scoring -> monitoring.

For each size (default 100,000 and 1,000,000 members) the jobs' own code runs in a fresh
temporary home, one step after the other, and each step's wall-clock seconds are printed;
then the 1M / 100k ratio per step. Training compares the candidates on its capped
member-hash sample (``modeling/training.py``, ``SELECTION_ROWS``); next to its choice and CV
MAE the benchmark prints a full-data selection's (every candidate cross-validated on every
training row, ``selection_cap=None``) for the sizes up to ``--full-selection-up-to``: on
every row it costs what the cap saves, so by default only the smaller size gets it.

Goals (issue 27): the loop for 1M members in at most 600 s on 2 cores; training at 1M at
most 4x its time at 100k; the candidate chosen at 1M the full-data comparison's, its CV MAE
within 1 % of the full-data figure.

    .venv/bin/python benchmarks/bench_loop.py                         # 100k and 1M
    .venv/bin/python benchmarks/bench_loop.py --sizes 5000 20000      # a quick look
    .venv/bin/python benchmarks/bench_loop.py --candidates hist_gradient_boosting_absolute_error  # a tree champion

Governance runs the model_governance job; its outcome is printed, and a version the checks keep
back (a soft referral on generated data) is promoted by an approver's recorded override
(``bench_batch_scoring.make_champion``), so that scoring and monitoring run and are timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch_scoring import make_champion  # noqa: E402

GOAL_LOOP_SECONDS = 600.0
GOAL_TRAINING_RATIO = 4.0
GOAL_MAE_GAP = 0.01
STEPS = ("generate", "features", "training", "governance", "batch scoring", "monitoring")


def timed(times: dict, step: str, work):
    started = time.perf_counter()
    result = work()
    times[step] = time.perf_counter() - started
    print(f"== {step}: {times[step]:.1f} s (load average {os.getloadavg()[0]:.1f})", flush=True)
    return result


def full_selection(settings, as_of: dt.date, seed: int, candidates: tuple | None = None) -> tuple[str, float]:
    """The candidate and CV MAE that comparing the candidates (default: all) on every training row
    gives: training's split, folds and selection rule on every candidate's 5-fold CV over all
    training rows (what ``train(selection_cap=None)`` compares, without its learning curve)."""
    from healthcare_mlops.composition import build_runtime
    from healthcare_mlops.features.definitions import LABEL_COLUMN, MODEL_INPUT_COLUMNS
    from healthcare_mlops.modeling.estimators import CANDIDATES
    from healthcare_mlops.modeling.splits import DEFAULT_SALT
    from healthcare_mlops.modeling.threads import pinned_threads
    from healthcare_mlops.modeling.training import (FOLDS, check_training_frame, cross_validate, select_candidate,
                                                    split_by_member, with_derived_groups)
    from healthcare_mlops.progress import Progress
    from healthcare_mlops.tasks.model_training import load_training_frame

    frame, _ = load_training_frame(build_runtime(settings).catalog, as_of)
    train_rows, _, folds = split_by_member(with_derived_groups(check_training_frame(frame)), DEFAULT_SALT)
    x, y = train_rows[list(MODEL_INPUT_COLUMNS)], train_rows[LABEL_COLUMN].to_numpy(float)
    names = candidates or tuple(CANDIDATES)
    progress = Progress(f"full-data comparison on {len(y):,} rows", len(names) * FOLDS,
                        lambda line: print(line, flush=True))
    with pinned_threads():
        results, _ = cross_validate(names, x, y, folds, seed, (), len(os.sched_getaffinity(0)), progress)
    for name, values in results.items():
        print(f"   {name:40} CV MAE {values['cv_mae']:10,.2f}  CV R2 {values['cv_r2']:.4f}", flush=True)
    best = select_candidate(results)
    return best, results[best]["cv_mae"]


def loop(members: int, home: Path, seed: int, as_of: dt.date, full: bool, candidates: tuple | None = None) -> dict:
    """Every step once on ``members`` generated members; their times, the choice and the comparison."""
    from healthcare_mlops.composition import build_runtime
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tasks import batch_inference, feature_engineering, model_monitoring
    from healthcare_mlops.tasks import model_training
    from healthcare_mlops.tasks.load_members import generate_patients

    settings = resolve_settings("local", home)
    runtime = build_runtime(settings)
    times: dict = {}
    print(f"\n=== {members:,} members", flush=True)
    timed(times, "generate", lambda: generate_patients(runtime, members, seed, as_of))
    timed(times, "features", lambda: feature_engineering.run(runtime, as_of))
    summary = timed(times, "training", lambda: model_training.run(runtime, as_of, seed=seed, candidates=candidates))
    outcome = timed(times, "governance", lambda: make_champion(runtime, summary["version"]))
    print(f"   governance: {outcome}", flush=True)
    timed(times, "batch scoring", lambda: batch_inference.run(runtime, as_of))
    timed(times, "monitoring", lambda: model_monitoring.run(runtime))
    client = runtime.mlflow_client
    run = client.get_run(summary["run_id"])
    chosen = {"candidate": summary["candidate"], "cv_mae": summary["metrics"]["cv_mae"],
              "sample_cv_mae": run.data.metrics[f"candidate_{summary['candidate']}_cv_mae"],
              "selection_rows": run.data.params.get("selection_rows")}
    if full:
        started = time.perf_counter()
        chosen["full"] = full_selection(settings, as_of, seed, candidates)
        print(f"   full-data selection (not part of the loop): {time.perf_counter() - started:.1f} s", flush=True)
    return {"members": members, "times": times, "chosen": chosen}


def report(results: list[dict]) -> bool:
    """Print the steps' times per size, the ratios of the last size to the first, and the choices."""
    sizes = [r["members"] for r in results]
    print(f"\n{'step':15}" + "".join(f"{n:>12,}" for n in sizes) + (f"{'ratio':>9}" if len(sizes) > 1 else ""))
    for step in (*STEPS, "total"):
        values = [sum(r["times"].values()) if step == "total" else r["times"][step] for r in results]
        ratio = f"{values[-1] / values[0]:8.1f}x" if len(values) > 1 and values[0] else ""
        print(f"{step:15}" + "".join(f"{v:11.1f}s" for v in values) + ratio)
    met = sum(results[-1]["times"].values()) <= GOAL_LOOP_SECONDS
    if len(results) > 1:
        met &= results[-1]["times"]["training"] <= GOAL_TRAINING_RATIO * results[0]["times"]["training"]
    for r in results:
        c = r["chosen"]
        line = (f"{r['members']:>10,} members: chose {c['candidate']} on {c['selection_rows']} rows "
                f"(sample CV MAE {c['sample_cv_mae']:,.0f}; on every training row {c['cv_mae']:,.0f})")
        if "full" in c:
            name, mae = c["full"]
            gap = abs(c["cv_mae"] - mae) / mae
            same = name == c["candidate"] and gap <= GOAL_MAE_GAP
            met &= same
            line += f"; full-data selection: {name}, CV MAE {mae:,.0f} ({gap:.2%} apart) {'met' if same else 'NOT met'}"
        else:
            line += "; full-data selection not run (--full-selection-up-to)"
        print(line)
    print(f"goals (loop <= {GOAL_LOOP_SECONDS:.0f} s at the largest size, training ratio <= {GOAL_TRAINING_RATIO}x, "
          f"same choice within {GOAL_MAE_GAP:.0%}): {'met' if met else 'NOT met'}")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--full-selection-up-to", type=int, default=100_000,
                        help="compare every candidate on every row too, for sizes up to this many members")
    parser.add_argument("--candidates", nargs="+", default=None,
                        help="train only these candidates (e.g. a tree one: the loop with a tree champion)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2026-01-01")
    args = parser.parse_args(argv)
    os.environ["HEALTHCARE_MLOPS_SPARK_MASTER"] = args.master
    as_of = dt.date.fromisoformat(args.as_of)
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="hc-bench-loop-") as scratch:
        results = [loop(n, Path(scratch) / f"home-{n}", args.seed, as_of, n <= args.full_selection_up_to,
                        tuple(args.candidates) if args.candidates else None)
                   for n in args.sizes]
    met = report(results)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
