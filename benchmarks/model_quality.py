"""Model quality on generated data or on a CSV in the public insurance-charges format.

    .venv/bin/python benchmarks/model_quality.py --patients 20000 --seed 42
    .venv/bin/python benchmarks/model_quality.py --csv insurance.csv

Runs the product's own path into a temporary home: ``data generate`` (or ``data ingest``),
the feature_engineering step and ``modeling.training.train`` with every candidate (5-fold
CV on the training split, then the held-out test split), and prints each candidate's CV
numbers, the selected model and its held-out metrics next to the quality goal of issue 4.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time

GOALS = {"cv_r2": (">=", 0.85), "cv_mae": ("<=", 1800.0), "test_risk_score_mae": ("<=", 7.0),
         "test_high_risk_capture": (">=", 0.85), "test_interval_coverage": ("in", (0.88, 0.93)),
         "test_interval_width_ratio": ("<=", 0.85)}


def _meets(value: float, rule) -> bool:
    op, target = rule
    if op == "in":
        return target[0] <= value <= target[1]
    return value >= target if op == ">=" else value <= target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--csv", help="a CSV in the public insurance-charges format instead of generated data")
    args = parser.parse_args()

    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.spark.patient_load import generate_patients, ingest_csv
    from healthcare_mlops.tasks import feature_engineering
    from healthcare_mlops.tasks.model_training import load_training_frame
    from healthcare_mlops.modeling.training import train

    as_of = dt.date(2026, 1, 1)
    with tempfile.TemporaryDirectory() as home:
        settings = resolve_settings("local", home)
        if args.csv:
            print(ingest_csv(settings, args.csv, as_of).as_dict())
        else:
            generate_patients(settings, args.patients, args.seed, as_of)
        feature_engineering.run(settings, as_of)
        frame, _ = load_training_frame(settings, as_of)
        started = time.perf_counter()
        result = train(frame, seed=args.seed)
        seconds = time.perf_counter() - started
    source = args.csv or f"generated, {args.patients} members, seed {args.seed}"
    print(f"\ndata: {source}; {int(frame['annual_charges'].notna().sum())} labelled rows; "
          f"training took {seconds:.0f} s")
    print(f"{'candidate':32} {'cv_mae':>9} {'cv_r2':>7} {'calibration':>13}")
    for name, values in result.cv_results.items():
        mark = "  <- selected" if name == result.candidate else ""
        print(f"{name:32} {values['cv_mae']:9.0f} {values['cv_r2']:7.4f} "
              f"{values['cv_calibration_min']:.3f}-{values['cv_calibration_max']:.3f}{mark}")
    print(f"\n{'metric':28} {'value':>10}  goal")
    for key, value in result.metrics.items():
        rule = GOALS.get(key)
        goal = "" if rule is None else f"{rule[0]} {rule[1]}  " + ("met" if _meets(value, rule) else "NOT met")
        print(f"{key:28} {value:10.4f}  {goal}")


if __name__ == "__main__":
    main()
