"""Benchmark: what per-member explanations cost, in batch scoring and in real-time scoring.

1. Batch: the batch_inference job's scoring path (``scoring.batch.score_features``) on the
   same 1M rows on ``local[2]``, with reasons (base, five contributions, floor line, top
   reasons, review reasons in words) for the members flagged for review (the job's
   ``EXPLAIN_FLAGGED``), for every member (``EXPLAIN_ALL``) and for none, rounds
   interleaved; the ratios to none. Goal (flagged, the job): <= 2.5x. A linear and a tree
   champion, one after the other.
2. Real time: a real ``healthcare-mlops serve`` (the MLflow scoring server) on loopback, one
   member per request, 1,000 sequential requests with ``{"params": {"reasons": true}}``
   and 1,000 without; p50 / p95 latency. Goal with reasons: p95 <= 50 ms.

    .venv/bin/python benchmarks/bench_explanations.py                       # 1M rows, both champions
    .venv/bin/python benchmarks/bench_explanations.py --rows 200000 --requests 200
    .venv/bin/python benchmarks/bench_explanations.py --candidates hist_gradient_boosting_poisson

Each model is trained first on generated data (20,000 members, one candidate of
``--candidates``: ``linear_huber``, selected on generated data, and
``hist_gradient_boosting_absolute_error``, selected on the public table) in a temporary home.
Setup as in bench_batch_scoring.py (cached DataFrame, warm-up in every
worker, full evaluation into the ``noop`` sink); the load average is printed with every run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch_scoring import million_rows, run_rounds, train_quick_model  # noqa: E402
from healthcare_mlops.runtime.spark_session import SPARK_APIS
from healthcare_mlops.composition import build_runtime

GOAL_RATIO = 2.5
GOAL_P95_MS = 50.0
MEMBER = {"age": 52, "bmi": 41.2, "children": 2, "smoker": True, "region": "southeast"}


def batch_ratio(spark, settings, rows: int, partitions: int, repeat: int, seed: int) -> float:
    """Time scoring with and without reasons; print both and return the ratio of the best runs."""
    import mlflow
    import pyarrow as pa

    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
    from healthcare_mlops.runtime.model_loading import load_scoring_model
    from healthcare_mlops.scoring.batch import (EXPLAIN_ALL, EXPLAIN_FLAGGED, EXPLAIN_NONE, model_input_names,
                                                model_source, score_features)
    from healthcare_mlops.scoring.rules import BusinessRules
    from healthcare_mlops.parameters import scoring_thresholds
    from healthcare_mlops.tables import ML_INSURANCE_FEATURES
    from healthcare_mlops.tasks.batch_inference import resolve_model

    model = resolve_model(build_runtime(settings), "champion")
    local_path = mlflow.artifacts.download_artifacts(model["uri"])
    inputs = model_input_names(mlflow.models.Model.load(local_path))
    rules = BusinessRules.for_model(scoring_thresholds(settings.variables), model["reference"])
    source = model_source(model["uri"], local_path, shared_filesystem=True, run_id=model["run_id"],
                          loader=load_scoring_model)
    table = pa.Table.from_pandas(million_rows(DeltaCatalog(settings).read_arrow(ML_INSURANCE_FEATURES).to_pandas(),
                                              rows, seed), preserve_index=False)
    df = spark.createDataFrame(table).repartition(partitions).cache()
    df.count()
    sample = spark.createDataFrame(table.slice(0, 20_000)).repartition(partitions).cache()
    sample.count()

    def scoring(data, explain: str):
        score_features(data, source, rules, inputs, explain=explain).write.format("noop").mode("overwrite").save()

    scopes = (EXPLAIN_FLAGGED, EXPLAIN_ALL, EXPLAIN_NONE)
    for scope in scopes:
        scoring(sample, scope)
    flagged = score_features(sample, source, rules, inputs, explain=EXPLAIN_NONE) \
        .selectExpr("avg(cast(requires_review as double))").first()[0]
    results = run_rounds({scope: (lambda scope=scope: scoring(df, scope)) for scope in scopes}, repeat, rows)
    by = {r["label"]: r for r in results}
    ratio = by[EXPLAIN_FLAGGED]["best"] / by[EXPLAIN_NONE]["best"]
    print(f"\nbatch, {rows:,} rows, {model['name']} version {model['version']} "
          f"(flagged for review: {flagged:.1%} of the warm-up rows):")
    for r in results:
        print(f"  explain={r['label']:8} best {r['best']:7.2f} s  median {r['median']:7.2f} s  "
              f"{r['rows_per_s']:>10,.0f} rows/s")
    print(f"  every row explained / none: {by[EXPLAIN_ALL]['best'] / by[EXPLAIN_NONE]['best']:.2f}x best")
    print(f"  flagged rows explained (the job) / none: {ratio:.2f}x best, "
          f"{by[EXPLAIN_FLAGGED]['median'] / by[EXPLAIN_NONE]['median']:.2f}x median  (goal <= {GOAL_RATIO}x)  "
          f"{'met' if ratio <= GOAL_RATIO else 'NOT met'}", flush=True)
    df.unpersist()
    sample.unpersist()
    return ratio


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, body: bytes) -> dict:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:  # nosec B310  # loopback server this script started
        return json.loads(response.read())


def serving_latency(home: Path, requests: int) -> float:
    """p50 / p95 of ``requests`` sequential one-member requests, with and without reasons; the p95 with."""
    port = _free_port()
    env = {**os.environ, "HEALTHCARE_MLOPS_HOME": str(home)}
    console = Path(sys.executable).with_name("healthcare-mlops")
    server = subprocess.Popen([str(console), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/invocations"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):  # nosec B310  # loopback
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the scoring server did not start") from None
                time.sleep(0.5)
        bodies = {"with_reasons": json.dumps({"dataframe_records": [MEMBER], "params": {"reasons": True}}).encode(),
                  "without": json.dumps({"dataframe_records": [MEMBER]}).encode()}
        answer = _post(url, bodies["with_reasons"])["predictions"][0]
        print(f"\nreal time, one member per request, {requests:,} sequential requests on loopback:")
        print(f"  answer with reasons: {answer['top_reasons']}")
        p95 = {}
        for label, body in bodies.items():
            for _ in range(20):
                _post(url, body)                       # warm-up
            seconds = []
            for _ in range(requests):
                started = time.perf_counter()
                _post(url, body)
                seconds.append(time.perf_counter() - started)
            ms = sorted(1000 * s for s in seconds)
            p95[label] = ms[int(0.95 * len(ms)) - 1]
            print(f"  {label:13} p50 {statistics.median(ms):6.1f} ms  p95 {p95[label]:6.1f} ms  "
                  f"max {ms[-1]:6.1f} ms  (load {os.getloadavg()[0]:.1f})", flush=True)
        print(f"  p95 with reasons: {p95['with_reasons']:.1f} ms (goal <= {GOAL_P95_MS:g} ms)  "
              f"{'met' if p95['with_reasons'] <= GOAL_P95_MS else 'NOT met'}")
        return p95["with_reasons"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--master", default="local[2]")
    # classic: the timed DataFrame is cached, which Spark Connect refuses as serverless does; the
    # scoring path (mapInArrow) is the same under both.
    parser.add_argument("--api", choices=SPARK_APIS, default="classic",
                        help="how ours and spark_udf reach Spark (the jobs' local default is connect)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--candidates", default="linear_huber,hist_gradient_boosting_absolute_error",
                        help="one champion of each (a linear and a tree one), measured side by side")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    os.environ["HEALTHCARE_MLOPS_SPARK_MASTER"] = args.master

    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
    from healthcare_mlops.runtime.spark_session import get_spark
    from healthcare_mlops.settings import resolve_settings

    spark = get_spark(api=args.api)
    if args.api == "classic":
        spark.sparkContext.setLogLevel("ERROR")
    print(f"spark {spark.version} on {args.master} (cores: {os.cpu_count()}, load average "
          f"{os.getloadavg()[0]:.1f})", flush=True)
    met = []
    with tempfile.TemporaryDirectory(prefix="hc-bench-explain-") as scratch:
        for candidate in [c.strip() for c in args.candidates.split(",") if c.strip()]:
            home = Path(scratch) / candidate
            t0 = time.perf_counter()
            train_quick_model(home, args.members, args.seed, (candidate,))
            print(f"\n{candidate} trained on {args.members:,} generated members in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            settings = resolve_settings("local", home)
            configure_mlflow(settings)
            ratio = batch_ratio(spark, settings, args.rows, args.partitions, args.repeat, args.seed)
            spark.catalog.clearCache()
            p95 = serving_latency(home, args.requests)
            met.append(ratio <= GOAL_RATIO and p95 <= GOAL_P95_MS)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
