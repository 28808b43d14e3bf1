"""Benchmark: our monitoring computation vs Evidently's DataDriftPreset on the same data.

The issue's goals: at 1M rows of the model's inputs plus the prediction, at least 5x
faster than Evidently's ``DataDriftPreset`` (pandas); and our per-row cost at 10M rows
within 1.3x of that at 1M (it scales linearly, or better).

    .venv/bin/python benchmarks/bench_monitoring.py                       # 1M vs Evidently, then 10M
    .venv/bin/python benchmarks/bench_monitoring.py --rows 1000000 --no-scale

Data: a 100k-row training reference and a current batch (1M, and 10M for the scale check)
of age, bmi, children, smoker, region, predicted_annual_charges (plus sex and age band, the
group columns we also monitor), generated in Spark, cached, mildly drifted (more smokers,
bmi +1). The same 1M rows are handed to Evidently as pandas frames.

Timed, ours: from the cached Spark DataFrame and the reference sample to the metric rows
and verdicts (``drift.value_counts`` + ``evaluation.evaluate_drift``: PSI, JS distance,
KS + p-value, Wasserstein/sd, chi-square per column, group shares, composite score).
Timed, Evidently: ``Dataset.from_pandas`` for both frames, ``Report([DataDriftPreset()])
.run`` and ``snapshot.dict()`` (its defaults at this size: normed Wasserstein for numeric
columns, Jensen-Shannon distance, natural log, for categorical ones). Data generation, the
Spark session start and ``--warmup`` untimed runs on another batch of the same size (the
JVM compiles Spark's generated code hot after a few runs: the first run at 1M takes 2-3x the
later ones) are not timed. The best of ``--repeat`` runs counts; every run is printed.

Evidently pins plotly < 6 and other versions than the project's, so it lives in its own venv
(the ``bench`` extra of pyproject.toml); the benchmark runs it there, in a subprocess, on
the same rows written to Parquet (``--evidently-python``; default ``.venv-bench/bin/python``,
or this interpreter when it can import evidently):

    python3 -m venv .venv-bench && .venv-bench/bin/pip install "evidently>=0.7" "pandas>=2.2,<3" "pyarrow>=17"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMERIC = ["age", "bmi", "children", "predicted_annual_charges"]
CATEGORICAL = ["smoker", "region"]
GOAL_SPEEDUP = 5.0
GOAL_SCALE = 1.3
IMPORTANCES = {"age": 0.245, "bmi": 0.133, "children": 0.010, "smoker": 0.612, "region": 0.0}

EVIDENTLY_SCRIPT = r"""
import json, sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

reference_path, current_path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
numeric, categorical = json.loads(sys.argv[4]), json.loads(sys.argv[5])
reference = pd.read_parquet(reference_path)
current = pd.read_parquet(current_path)
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
times, values = [], {}
for _ in range(repeat):
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                               Dataset.from_pandas(reference, data_definition=definition))
    result = snapshot.dict()
    times.append(time.perf_counter() - started)
for metric in result["metrics"]:
    config = metric["config"]
    if config.get("column") is not None:
        values[config["column"]] = {"method": config.get("method"), "value": metric["value"]}
import evidently
print(json.dumps({"seconds": times, "values": values, "version": evidently.__version__, "rows": len(current)}))
"""


def generate(spark, rows: int, seed: int, drifted: bool):
    """A population of ``rows`` members with a prediction, generated in Spark (any size)."""
    from pyspark.sql import functions as F

    smoker_share = 0.25 if drifted else 0.205
    bmi_shift = 1.0 if drifted else 0.0
    u = lambda tag: F.rand(seed * 100 + tag)                                   # noqa: E731
    frame = spark.range(rows).select(
        (F.floor(u(1) * 47) + 18).cast("int").alias("age"),
        F.round(F.least(F.greatest(F.lit(30.7 + bmi_shift) + F.randn(seed * 100 + 2) * 6.1, F.lit(16.0)),
                        F.lit(53.0)), 2).alias("bmi"),
        F.when(u(3) < 0.43, 0).when(u(3) < 0.67, 1).when(u(3) < 0.85, 2).when(u(3) < 0.97, 3)
         .when(u(3) < 0.99, 4).otherwise(5).cast("int").alias("children"),
        (u(4) < smoker_share).alias("smoker"),
        F.element_at(F.array(*[F.lit(r) for r in ("northeast", "northwest", "southeast", "southwest")]),
                     (F.floor(u(5) * 4) + 1).cast("int")).alias("region"),
        F.when(u(6) < 0.5, "male").otherwise("female").alias("sex"),
        u(7).alias("_noise"))
    band = (F.when(F.col("age") >= 60, "60+").when(F.col("age") >= 50, "50-59").when(F.col("age") >= 40, "40-49")
            .when(F.col("age") >= 30, "30-39").otherwise("18-29"))
    base = (F.when(F.col("smoker") & (F.col("bmi") >= 30), 30200.0).when(F.col("smoker"), 11500.0)
            .otherwise(-2650.0))
    prediction = F.greatest(base + 265.0 * F.col("age") + 500.0 * F.col("children")
                            - 1500.0 * F.log(F.col("_noise") + F.lit(1e-9)), F.lit(1100.0))
    return frame.withColumn("age_band", band).withColumn("predicted_annual_charges", prediction).drop("_noise")


def reference_json(sample):
    """The training reference, built by training's own function from the reference sample."""
    from healthcare_mlops.modeling.training import training_reference

    return training_reference(sample, sample["predicted_annual_charges"].to_numpy(float), IMPORTANCES)


def ours(spark, current, sample, reference, repeat: int) -> tuple[list[float], dict]:
    from healthcare_mlops.monitoring import evaluation as ev
    from healthcare_mlops.monitoring.drift import reference_counts, value_counts
    from healthcare_mlops.parameters import monitoring_thresholds
    from healthcare_mlops.settings import resolve_settings

    thresholds = monitoring_thresholds(resolve_settings("local").variables)
    times, result = [], None
    logged = reference_counts(sample, ev.column_specs(reference))     # training's work: logged with the model
    for _ in range(repeat):
        started = time.perf_counter()
        specs = ev.column_specs(reference)
        counts = value_counts(current, logged, specs)
        rows, verdicts, volume = ev.evaluate_drift(specs, counts, thresholds)
        times.append(time.perf_counter() - started)
        result = {"rows": rows, "verdicts": verdicts, "volume": volume}
    return times, result


def evidently_python(requested: str | None) -> str | None:
    if requested:
        return requested
    try:
        import evidently  # noqa: F401
        return sys.executable
    except ImportError:
        candidate = ROOT / ".venv-bench" / "bin" / "python"
        return str(candidate) if candidate.exists() else None


def run_evidently(python: str, reference_path: Path, current_path: Path, repeat: int) -> dict:
    result = subprocess.run([python, "-c", EVIDENTLY_SCRIPT, str(reference_path), str(current_path), str(repeat),
                             json.dumps(NUMERIC), json.dumps(CATEGORICAL)],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"Evidently failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def side_by_side(our_rows: list[dict], theirs: dict) -> None:
    by = {(r["column_name"], r["metric"]): r["value"] for r in our_rows}
    name = {"predicted_annual_charges": "prediction"}
    print(f"\n{'column':26} {'Evidently method':32} {'Evidently':>10} {'ours (same stat)':>17} "
          f"{'ours PSI':>9} {'ours KS':>8} {'ours JS b2':>10}")
    for column in NUMERIC + CATEGORICAL:
        key = name.get(column, column)
        entry = theirs.get(column, {})
        method = str(entry.get("method"))
        if "Wasserstein" in method:
            same = by.get((key, "wasserstein_norm"))
        elif "Jensen" in method:          # Evidently: natural log; ours: base 2
            same = by.get((key, "js_distance"))
            same = None if same is None else same * math.sqrt(math.log(2.0))
        else:
            same = None
        fmt = lambda v: "" if v is None else f"{v:.6f}"                          # noqa: E731
        print(f"{column:26} {method:32} {fmt(entry.get('value')):>10} {fmt(same):>17} "
              f"{fmt(by.get((key, 'psi'))):>9} {fmt(by.get((key, 'ks_statistic'))):>8} "
              f"{fmt(by.get((key, 'js_distance'))):>10}")
    print("(ours (same stat): wasserstein_norm for numeric columns; js_distance x sqrt(ln 2), i.e. in Evidently's "
          "natural-log units, for categorical ones)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="current batch for the comparison (1M)")
    parser.add_argument("--scale-rows", type=int, default=10_000_000, help="the larger batch for the per-row check")
    parser.add_argument("--no-scale", action="store_true", help="skip the larger batch")
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (the JVM's JIT warms up)")
    parser.add_argument("--evidently-python", default=None)
    parser.add_argument("--no-evidently", action="store_true")
    args = parser.parse_args(argv)

    from healthcare_mlops.runtime.spark_session import get_spark

    os.environ.setdefault("HEALTHCARE_MLOPS_DRIVER_MEMORY", "8g")
    started = time.perf_counter()
    spark = get_spark()
    spark.sparkContext.setLogLevel("ERROR")
    reference_frame = generate(spark, args.reference_rows, 1, drifted=False).cache()
    sample = reference_frame.toPandas()
    reference = reference_json(sample)
    warm = generate(spark, args.rows, 3, drifted=True).cache()
    warm.count()
    warm_times, _ = ours(spark, warm, sample, reference, args.warmup)        # JVM JIT, Python imports
    warm.unpersist()
    print(f"spark start-up, reference ({args.reference_rows:,} rows) and warm-up: "
          f"{time.perf_counter() - started:.1f} s (cores: {os.cpu_count()}; warm-up runs on other "
          f"{args.rows:,} rows: {', '.join(f'{t:.2f}' for t in warm_times)} s)", flush=True)

    current = generate(spark, args.rows, 2, drifted=True).cache()
    current.count()
    our_times, our_result = ours(spark, current, sample, reference, args.repeat)
    our_best = min(our_times)
    print(f"ours      {args.rows:>12,} rows: {our_best:7.2f} s (runs: {', '.join(f'{t:.2f}' for t in our_times)}) "
          f"= {our_best / args.rows * 1e6:.3f} us/row; verdicts: "
          + (", ".join(f"{v.type}/{v.severity}" for v in our_result["verdicts"]) or "none"), flush=True)

    summary = {"rows": args.rows, "ours_seconds": our_times}
    if not args.no_evidently:
        python = evidently_python(args.evidently_python)
        if python is None:
            print("Evidently is not installed (see the module docstring): comparison skipped", file=sys.stderr)
        else:
            with tempfile.TemporaryDirectory(prefix="hc-bench-monitoring-") as folder:
                reference_path, current_path = Path(folder) / "reference.parquet", Path(folder) / "current.parquet"
                columns = NUMERIC + CATEGORICAL
                sample[columns].to_parquet(reference_path, index=False)
                current.select(*columns).toPandas().to_parquet(current_path, index=False)
                theirs = run_evidently(python, reference_path, current_path, args.repeat)
            their_best = min(theirs["seconds"])
            speedup = their_best / our_best
            print(f"Evidently {theirs['rows']:>12,} rows: {their_best:7.2f} s (runs: "
                  f"{', '.join(f'{t:.2f}' for t in theirs['seconds'])}), evidently {theirs['version']}")
            print(f"speed-up at {args.rows:,} rows: {speedup:.1f}x (goal >= {GOAL_SPEEDUP:g}x: "
                  f"{'met' if speedup >= GOAL_SPEEDUP else 'NOT met'})")
            side_by_side(our_result["rows"], theirs["values"])
            summary.update(evidently_seconds=theirs["seconds"], speedup=speedup)
    current.unpersist()

    if not args.no_scale:
        large = generate(spark, args.scale_rows, 4, drifted=True).cache()
        large.count()
        large_times, _ = ours(spark, large, sample, reference, args.repeat)
        large_best = min(large_times)
        ratio = (large_best / args.scale_rows) / (our_best / args.rows)
        print(f"\nours      {args.scale_rows:>12,} rows: {large_best:7.2f} s (runs: "
              f"{', '.join(f'{t:.2f}' for t in large_times)}) = {large_best / args.scale_rows * 1e6:.3f} us/row")
        print(f"per-row cost at {args.scale_rows:,} / at {args.rows:,}: {ratio:.2f} "
              f"(goal <= {GOAL_SCALE:g}: {'met' if ratio <= GOAL_SCALE else 'NOT met'})")
        summary.update(scale_rows=args.scale_rows, scale_seconds=large_times, per_row_ratio=ratio)
        large.unpersist()
    print("\n" + json.dumps(summary))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
