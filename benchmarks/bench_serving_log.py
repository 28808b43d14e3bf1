"""Benchmark: what logging every request to ``serving_payload`` costs the local scoring server.

Two real scoring servers (``python -m healthcare_mlops.runtime.scoring_server``, the process
``healthcare-mlops serve`` runs) on loopback, for the same champion in the same home: one
logs each request (batched Delta writes in a background thread), one runs with
``--no-log``. One member per request, ``--requests`` sequential requests to each, sent
alternately (which server goes first flips every request) so that load from other
processes hits both alike. Prints p50 / p95 latency of each, the p95 ratio, and the rows
the logging server committed once stopped. Goal: p95 with logging <= 1.2x without.

    .venv/bin/python benchmarks/bench_serving_log.py                   # 1,000 requests each
    .venv/bin/python benchmarks/bench_serving_log.py --requests 200 --members 20000

The champion is trained first on generated data (``--members``, hist_gradient_boosting_poisson)
in a temporary home and promoted by governance (the server serves the audited champion only).
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
import urllib.error
import urllib.request
from pathlib import Path

GOAL_RATIO = 1.2
MEMBER = {"age": 52, "bmi": 41.2, "children": 2, "smoker": True, "region": "southeast"}
BODY = json.dumps({"dataframe_records": [MEMBER]}).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, log: bool) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    argv = [sys.executable, "-m", "healthcare_mlops.runtime.scoring_server", "--home", str(home),
            "--host", "127.0.0.1", "--port", str(port), *([] if log else ["--no-log"])]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2):  # nosec B310  # loopback server this script started
                return server, f"{url}/invocations"
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the scoring server did not start: {server.stderr.read()[-2000:]}") from None
            time.sleep(0.5)


def timed_post(url: str) -> float:
    request = urllib.request.Request(url, data=BODY, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:  # nosec B310  # loopback server this script started
        response.read()
        if response.status != 200:
            raise RuntimeError(f"the server answered {response.status}")
    return (time.perf_counter() - started) * 1000


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)        # uvicorn stops; the request log commits what it holds
    server.wait(timeout=60)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[94]


def promoted_champion(home: Path, members: int, seed: int) -> None:
    """Generate, build features, train and promote through governance, as the training pipeline does."""
    import datetime as dt

    from healthcare_mlops.composition import build_runtime
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tasks import feature_engineering, model_governance, model_training
    from healthcare_mlops.tasks.load_members import generate_patients

    runtime = build_runtime(resolve_settings("local", home))
    as_of = dt.date(2026, 1, 1)
    generate_patients(runtime, members, seed, as_of)
    feature_engineering.run(runtime, as_of)
    model_training.run(runtime, as_of, seed=seed, candidates=("hist_gradient_boosting_poisson",))
    if model_governance.run(runtime) != model_governance.PROMOTED:
        raise RuntimeError("governance did not promote the trained version: nothing to serve")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--members", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tables import SERVING_PAYLOAD

    home = Path(tempfile.mkdtemp(prefix="bench-serving-log-")) / "lakehouse"
    promoted_champion(home, args.members, args.seed)
    (logged, logged_url), (plain, plain_url) = start_server(home, True), start_server(home, False)
    latencies = {"with logging": [], "without": []}
    try:
        for url in (logged_url, plain_url):          # warm-up: the first answers load lazily
            for _ in range(20):
                timed_post(url)
        for i in range(args.requests):
            order = [("with logging", logged_url), ("without", plain_url)]
            for name, url in (order if i % 2 == 0 else order[::-1]):
                latencies[name].append(timed_post(url))
    finally:
        stop(logged)
        stop(plain)
    rows = DeltaCatalog(resolve_settings("local", home)).read_arrow(SERVING_PAYLOAD).num_rows
    print(f"load average {os.getloadavg()[0]:.1f}; {args.requests} sequential requests to each server")
    for name, values in latencies.items():
        print(f"  {name:<13} p50 {statistics.median(values):6.2f} ms   p95 {p95(values):6.2f} ms")
    ratio = p95(latencies["with logging"]) / p95(latencies["without"])
    verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
    print(f"p95 ratio with/without logging: {ratio:.3f} (goal <= {GOAL_RATIO}: {verdict})")
    expected = args.requests + 20
    print(f"rows committed to {SERVING_PAYLOAD}: {rows} (expected {expected})")
    return 0 if ratio <= GOAL_RATIO and rows == expected else 1


if __name__ == "__main__":
    sys.exit(main())
