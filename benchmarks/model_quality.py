"""Model quality on generated data or on a CSV in the public insurance-charges format.

    .venv/bin/python benchmarks/model_quality.py --patients 1338 --seeds 1-10
    .venv/bin/python benchmarks/model_quality.py --patients 20000 --seeds 42
    .venv/bin/python benchmarks/model_quality.py --csv insurance.csv

Runs the product's own path into a temporary home: ``data generate`` (or ``data ingest``),
the feature_engineering step and ``modeling.training.train`` with every candidate (5-fold
CV on the member-hash training split, then the held-out hash test split), and prints each
candidate's CV numbers, the selected model and the quality goals of issue 12. The goals
on model fit are judged on the out-of-fold predictions of every training member (as the
public table's known results are 5-fold CV), the intervals' too (calibrated on the other
folds, judged on each fold); the held-out split's numbers are printed next to them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from healthcare_mlops.composition import build_runtime, cli_runtime

GOALS = {"cv_r2": (">=", 0.85), "cv_mae": ("<=", 1800.0), "cv_risk_score_mae": ("<=", 7.0),
         "cv_high_risk_capture": (">=", 0.85), "cv_interval_coverage": ("in", (0.88, 0.93)),
         "cv_interval_width_ratio": ("<=", 0.85)}


def _meets(value: float, rule) -> bool:
    op, target = rule
    if op == "in":
        return target[0] <= value <= target[1]
    return value >= target if op == ">=" else value <= target


def _seeds(text: str) -> list[int]:
    """'1-10' or '1,5,7' or '42'."""
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(part) for part in text.split(",")]


def measure(settings, as_of, patients: int | None, seed: int, csv: str | None):
    """Load (generate or ingest), build features, train: the result and the training seconds."""
    from healthcare_mlops.modeling.training import train
    from healthcare_mlops.tasks.load_members import generate_patients, ingest_csv
    from healthcare_mlops.tasks import feature_engineering
    from healthcare_mlops.tasks.model_training import load_training_frame

    if csv:
        ingest_csv(cli_runtime(settings), csv, as_of)
    else:
        generate_patients(cli_runtime(settings), patients, seed, as_of)
    feature_engineering.run(build_runtime(settings), as_of)
    frame, _ = load_training_frame(build_runtime(settings).catalog, as_of)
    started = time.perf_counter()
    # the job's own setting: a worker per core (the result does not depend on it)
    result = train(frame, seed=seed, workers=len(os.sched_getaffinity(0)))
    return frame, result, time.perf_counter() - started


def report(source: str, frame, result, seconds: float) -> None:
    print(f"\ndata: {source}; {int(frame['annual_charges'].notna().sum())} labelled rows; "
          f"training took {seconds:.0f} s")
    print(f"{'candidate':40} {'cv_mae':>9} {'cv_r2':>7} {'mean pred/actual':>17}")
    for name, values in result.cv_results.items():
        mark = "  <- selected" if name == result.candidate else ""
        print(f"{name:40} {values['cv_mae']:9.0f} {values['cv_r2']:7.4f} {values['cv_calibration']:17.3f}{mark}")
    print(f"\n{'metric':28} {'value':>10}  goal")
    for key, value in result.metrics.items():
        rule = GOALS.get(key)
        goal = "" if rule is None else f"{rule[0]} {rule[1]}  " + ("met" if _meets(value, rule) else "NOT met")
        print(f"{key:28} {value:10.4f}  {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--seeds", default="42", help="one seed, a list (1,2,3) or a range (1-10)")
    parser.add_argument("--csv", help="a CSV in the public insurance-charges format instead of generated data")
    args = parser.parse_args()

    from healthcare_mlops.settings import resolve_settings

    as_of = dt.date(2026, 1, 1)
    summary = []
    for seed in _seeds(args.seeds):
        with tempfile.TemporaryDirectory() as home:
            frame, result, seconds = measure(resolve_settings("local", home), as_of, args.patients, seed, args.csv)
        source = args.csv or f"generated, {args.patients} members, seed {seed}"
        report(source, frame, result, seconds)
        summary.append((seed, result))
    if len(summary) > 1:
        print(f"\n{'seed':>4} {'candidate':40} " + " ".join(f"{k:>14}" for k in GOALS) + "  all goals")
        for seed, result in summary:
            values = [result.metrics[k] for k in GOALS]
            met = all(_meets(v, GOALS[k]) for k, v in zip(GOALS, values))
            print(f"{seed:>4} {result.candidate:40} " + " ".join(f"{v:14.4f}" for v in values)
                  + f"  {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
