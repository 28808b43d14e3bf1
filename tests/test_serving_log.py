"""The local scoring server logs every request to ``serving_payload``, names the version, and follows the champion.

Real pieces throughout: a registry (MLflow, SQLite) with two registered versions of a small
pyfunc, MLflow's own scoring app, the guard, uvicorn over real HTTP, and the Delta table
written by the runtime adapter and read back with delta-rs.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import mlflow
import pandas as pd
import pytest
import uvicorn

from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.runtime.scoring_server import ChampionFollower, delta_writer, load_app, with_shutdown
from healthcare_mlops.scoring.http_server import RequestGuard
from healthcare_mlops.scoring.request_log import RequestLog
from healthcare_mlops.tables import MODEL_INPUT_COLUMNS, SERVING_PAYLOAD, SERVING_PAYLOAD_SPEC

MODEL = "tiny_model"
MEMBER = {"age": 35, "bmi": 28.5, "children": 1, "smoker": False, "region": "northeast"}
SECRET_SSN = "123-45-6789"


class Charges(mlflow.pyfunc.PythonModel):
    """Charges = ``per_year`` times age: two versions answer differently."""

    def __init__(self, per_year: float):
        self.per_year = per_year

    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"predicted_annual_charges": model_input["age"].astype(float) * self.per_year})


@pytest.fixture
def registry(tmp_path):
    """Two registered versions of ``MODEL``; the alias ``champion`` on version 1."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    # the artifacts under tmp_path: an experiment made without a location writes ./mlruns in the checkout
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("serving-log", (tmp_path / "artifacts").as_uri()))
    example = pd.DataFrame([MEMBER])
    for per_year in (100.0, 200.0):
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="model", python_model=Charges(per_year), input_example=example,
                                    registered_model_name=MODEL)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(MODEL, "champion", "1")
    yield client
    mlflow.set_tracking_uri(None)


def serve(app) -> tuple[str, uvicorn.Server, threading.Thread]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/invocations", server, thread


def post(url: str, payload) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.mark.slow
def test_every_request_is_logged_without_personal_data_and_names_its_version(registry, settings):
    champion = lambda: registry.get_model_version_by_alias(MODEL, "champion").version   # noqa: E731
    follower = ChampionFollower(champion, lambda v: load_app(MODEL, v), check_seconds=3600)
    log = RequestLog(delta_writer(settings), batch_rows=1000, flush_seconds=3600)
    url, server, thread = serve(RequestGuard(follower, MODEL_INPUT_COLUMNS, log))
    try:
        status, headers, body = post(url, {"dataframe_records": [{**MEMBER, "note": "x"}]})
        assert (status, headers["x-model-version"], body["model_version"]) == (200, "1", "1")
        assert body["predictions"][0]["predicted_annual_charges"] == 3500.0

        status, headers, body = post(url, {"dataframe_records": [{**MEMBER, "ssn": SECRET_SSN}]})
        assert (status, headers["x-model-version"]) == (400, "1") and "ssn" in json.dumps(body)

        registry.set_registered_model_alias(MODEL, "champion", "2")       # a promotion
        assert follower.refresh() is True and follower.refresh() is False
        split = {"dataframe_split": {"columns": list(MEMBER), "data": [list(MEMBER.values())]}}
        status, headers, body = post(url, split)
        assert (status, body["model_version"], body["predictions"][0]["predicted_annual_charges"]) == (200, "2", 7000.0)
        status, headers, body = post(url, {"dataframe_records": [{**MEMBER, "age": "old"}]})
        assert (status, headers["x-model-version"]) == (400, "2") and "model_version" not in body
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert log.flush() == 4

    table = DeltaCatalog(settings).read_arrow(SERVING_PAYLOAD)
    rows = table.to_pandas().sort_values("request_time").reset_index(drop=True)
    assert tuple(table.schema.names) == SERVING_PAYLOAD_SPEC.names
    assert list(rows["status_code"]) == [200, 400, 200, 400]
    assert list(rows["model_version"]) == ["1", "1", "2", "2"]
    assert json.loads(rows.loc[0, "request"]) == {"dataframe_records": [MEMBER]}       # the extra field dropped
    assert json.loads(rows.loc[2, "request"]) == {"dataframe_records": [MEMBER]}       # split kept as records
    assert rows.loc[1, "request"] is None and rows.loc[3, "request"] is None          # refused: no body kept
    assert SECRET_SSN not in "".join(rows.astype(str).to_numpy().ravel())
    assert (rows["execution_duration_ms"] >= 0).all() and rows["request_date"].iloc[0] == dt.date.today()
    assert rows["served_entity_id"].eq(MODEL).all()


def test_a_failing_table_never_fails_an_answer_and_keeps_the_rows():
    writes, fail = [], [True]

    def write(rows):
        if fail[0]:
            raise OSError("disk full")
        writes.append(len(rows))

    log = RequestLog(write, batch_rows=2, flush_seconds=3600)
    row = dict.fromkeys(SERVING_PAYLOAD_SPEC.names)
    log.add(row)
    log.add(row)
    assert log.flush() == 0                  # the write failed: reported, kept
    fail[0] = False
    log.add(row)
    assert log.flush() == 3 and writes == [3]
    with pytest.raises(ValueError, match="lacks"):
        log.add({"status_code": 200})


def test_the_request_log_commits_when_the_server_stops():
    """uvicorn re-raises SIGTERM after shutting down: the lifespan's shutdown is where the last rows commit."""
    stopped = []

    async def app(scope, receive, send):          # the scoring app's place; only the lifespan matters here
        raise AssertionError("no request is sent")

    _, server, thread = serve(with_shutdown(app, lambda: stopped.append("closed")))
    assert stopped == []
    server.should_exit = True
    thread.join(timeout=30)
    assert stopped == ["closed"]
