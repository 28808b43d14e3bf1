"""Real-time scoring: the local MLflow scoring server for the champion, and the Databricks endpoint request."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pandas as pd
import pytest

from healthcare_mlops.composition import build_runtime
from healthcare_mlops.features.definitions import MODEL_INPUT_COLUMNS
from healthcare_mlops.modeling.pyfunc import OUTPUT_COLUMNS
from healthcare_mlops.modeling.risk import RISK_CATEGORIES
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.runtime.serving_endpoint import local_server_command
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tables import ML_PATIENT_PREDICTIONS

DAY = dt.date(2026, 1, 2)
CLI = [sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def server(copy_home):
    """``healthcare-mlops serve --port N`` on a copy of the pipeline home, until /ping answers."""
    port = _free_port()
    env = {**os.environ, "HEALTHCARE_MLOPS_HOME": str(copy_home)}
    process = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}: {process.stdout.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.time() > deadline:
                pytest.fail("the scoring server did not answer /ping within 180 s")
            time.sleep(0.5)
        yield {"url": url, "home": copy_home, "process": process}
    finally:
        os.killpg(process.pid, signal.SIGTERM)    # the serve process and the server it started
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def test_http_scoring_matches_batch_scoring_and_refuses_bad_payloads(spark, server):
    from healthcare_mlops.tasks import batch_inference

    settings = resolve_settings("local", server["home"])
    batch_inference.run(build_runtime(settings), DAY)
    batch = DeltaCatalog(settings).read_arrow(ML_PATIENT_PREDICTIONS).to_pandas()
    members = batch[batch["predicted_annual_charges"] > settings.variables["min_predicted_charges"]]
    members = pd.concat([members[members["smoker"]].head(2), members[~members["smoker"]].head(2)])
    records = [{"age": int(r.age), "bmi": float(r.bmi), "children": int(r.children), "smoker": bool(r.smoker),
                "region": r.region} for r in members.itertuples()]
    invocations = f"{server['url']}/invocations"

    status, body = _post(invocations, {"dataframe_records": records})
    assert status == 200, body
    split = {"dataframe_split": {"columns": list(MODEL_INPUT_COLUMNS),
                                 "data": [[r[c] for c in MODEL_INPUT_COLUMNS] for r in records]}}
    status_split, body_split = _post(invocations, split)
    assert status_split == 200 and body_split == body
    served = pd.DataFrame(body["predictions"])
    assert tuple(served.columns) == OUTPUT_COLUMNS
    for column in OUTPUT_COLUMNS:
        expected = members[column].reset_index(drop=True)
        if column == "risk_category":
            assert list(served[column]) == list(expected)
        else:
            assert served[column].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-9)

    good = records[0]
    for payload, field in [
        ({"dataframe_records": [{k: v for k, v in good.items() if k != "age"}]}, "age"),       # missing field
        ({"dataframe_records": [{**good, "smoker": "no"}]}, "smoker"),                        # wrong type
        ({"dataframe_records": [{**good, "bmi": "heavy"}]}, "bmi"),                           # wrong type
        ({"dataframe_records": [{**good, "age": "35"}]}, "age"),                              # a number as text
        ({"dataframe_records": [{**good, "age": 35.5}]}, "age"),                              # not whole
        ({"dataframe_records": [{**good, "age": 150}]}, "age"),                               # out of range
        ({"dataframe_records": [{**good, "region": "atlantis"}]}, "region"),
        ({"dataframe_split": {"columns": ["age", "bmi"], "data": [[40, 30.0]]}}, "children"),
    ]:
        status, body = _post(invocations, payload)
        assert 400 <= status < 500, (payload, status, body)
        message = body.get("message", "")
        assert re.search(rf"\b{field}\b", message.split("Error:")[-1]), (payload, message)
    status, body = _post(invocations, {"dataframe_records": [{**good, "age": 150}]})
    assert "age: outside 18-100" in body["message"]


GOOD = {"age": 35, "bmi": 28.5, "children": 1, "smoker": False, "region": "northeast"}


def _refusal(body: dict) -> str:
    """A 400's message, after checking it is the model's own JSON and not MLflow's DataFrame dump."""
    message = body["message"]
    assert "Failed to predict data" not in message and "DataFrame" not in message, message
    assert "\n" not in message and len(message) < 600, message
    for column in ("smoker", "region"):     # a pandas dump has a header line naming every column
        assert not re.search(rf"\bage\b.*\b{column}\b", message), message
    return message


def test_the_scoring_server_names_the_record_and_field_of_each_refusal(server):
    """Each refusal is JSON naming the record, the field and the rule (never the value sent);
    `on_error: skip` scores the rest. A prohibited field refuses the whole request
    (test_security_serving.py)."""
    invocations = f"{server['url']}/invocations"
    records = [GOOD, {**GOOD, "age": "35"}, {**GOOD, "children": 2.5}, {**GOOD, "bmi": 95.0},
               {**GOOD, "bmi": "heavy"}]

    status, body = _post(invocations, {"dataframe_records": records})
    assert status == 400
    assert _refusal(body).startswith("4 of 5 records refused: record 1, age: expected a number, got text")
    assert body["errors"] == [
        {"record": 1, "field": "age", "message": "expected a number, got text"},
        {"record": 2, "field": "children", "message": "not a whole number"},
        {"record": 3, "field": "bmi", "message": "outside 10.0-80.0"},
        {"record": 4, "field": "bmi", "message": "expected a number, got text"}]

    status, body = _post(invocations, {"dataframe_records": [{**GOOD, "sex": "male"}]})     # one record
    assert status == 400 and _refusal(body).startswith("sex: a prohibited input")

    status, body = _post(invocations, {"dataframe_records": records, "params": {"on_error": "skip"}})
    assert status == 200, body
    predictions = body["predictions"]
    assert len(predictions) == 5
    assert predictions[0]["error"] is None
    assert predictions[0]["risk_category"] in {name for _, name in RISK_CATEGORIES}
    assert [p["error"]["field"] if p["error"] else None for p in predictions] == [None, "age", "children", "bmi", "bmi"]
    assert all(p[c] is None for p in predictions[1:] for c in OUTPUT_COLUMNS)

    status, body = _post(invocations, {"dataframe_records": [GOOD], "params": {"on_error": "ignore"}})
    assert status == 400 and _refusal(body) == "params.on_error: expected one of fail, skip"


def test_a_large_request_with_one_bad_record(server):
    """10,000 records, one bad: the refusal names it without echoing the request; skip scores 9,999."""
    invocations = f"{server['url']}/invocations"
    records = [{**GOOD, "age": 18 + i % 47} for i in range(10_000)]
    records[7_321] = {**records[7_321], "children": "two"}

    status, body = _post(invocations, {"dataframe_records": records})
    assert status == 400
    assert _refusal(body) == "1 of 10000 records refused: record 7321, children: expected a number, got text"
    assert body["errors"] == [{"record": 7321, "field": "children", "message": "expected a number, got text"}]

    status, body = _post(invocations, {"dataframe_records": records, "params": {"on_error": "skip"}})
    assert status == 200
    errors = [(i, p["error"]) for i, p in enumerate(body["predictions"]) if p["error"] is not None]
    assert errors == [(7321, {"record": 7321, "field": "children", "message": "expected a number, got text"})]
    assert sum(p["predicted_annual_charges"] is not None for p in body["predictions"]) == 9_999


@pytest.mark.slow
def test_serve_without_a_champion_says_what_to_do(home):
    result = subprocess.run([*CLI, "serve", "--port", str(_free_port())], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "HEALTHCARE_MLOPS_HOME": str(home)})
    assert result.returncode == 1
    assert "has no champion: run the training pipeline first" in result.stderr


@pytest.mark.slow
def test_serve_on_a_databricks_target_points_at_the_endpoint(home):
    result = subprocess.run([*CLI, "--target", "dev", "serve"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HEALTHCARE_MLOPS_HOME": str(home)})
    assert result.returncode == 1
    assert "Model Serving endpoint 'insurance-risk-dev-${workspace.current_user.domain_friendly_name}'" in result.stderr


def test_the_local_server_command(settings):
    argv, env, version = local_server_command(settings, 8123, "127.0.0.1", version="4")
    assert argv[1:] == ["-m", "healthcare_mlops.runtime.scoring_server", "--home", str(settings.home),
                        "--port", "8123", "--host", "127.0.0.1"]
    assert env["MLFLOW_TRACKING_URI"] == settings.tracking_uri == env["MLFLOW_REGISTRY_URI"]
    assert version == "4"
