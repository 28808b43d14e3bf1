"""Attacks on the runtime (issue 13, part D): a killed runner, numbers out of bounds, member
rows in MLflow artifacts, personal data in values, and the static security scan.

Real processes, real Delta tables, the real MLflow registry of the session's trained pipeline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.bundle.run_history import read_runs
from healthcare_mlops.bundle.runner import run_job
from healthcare_mlops.settings import LOCAL_OVERRIDES, Settings

REPO = Path(__file__).resolve().parents[1]
RUNNER_FIXTURE = REPO / "tests" / "fixtures" / "bundles" / "runner"

# -- the runner's processes -----------------------------------------------------------------------

COMMIT_TASK = '''"""Start a helper in the task's process group, say so, then "commit" much later."""
import json, os, subprocess, sys, time
from pathlib import Path

home = Path(os.environ["HEALTHCARE_MLOPS_HOME"])
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
(home / "task.tmp").write_text(json.dumps({"pid": os.getpid(), "pgid": os.getpgrp(), "helper": helper.pid}))
os.replace(home / "task.tmp", home / "task.json")
time.sleep(60)
(home / "committed").write_text("the task outlived its runner")
'''

COMMIT_JOB = '''
    committing:
      name: committing-${bundle.target}
      tasks:
        - task_key: commit
          environment_key: default
          spark_python_task:
            python_file: ../tasks/commit.py
            parameters: [--target, "${bundle.target}"]
      environments:
        - environment_key: default
          spec:
            environment_version: "2"
'''


@pytest.fixture
def committing_bundle(tmp_path):
    """The runner fixture bundle plus a job whose task starts a helper and commits after 60 s."""
    root = tmp_path / "bundle"
    shutil.copytree(RUNNER_FIXTURE, root)
    (root / "tasks" / "commit.py").write_text(COMMIT_TASK)
    with open(root / "resources" / "jobs.yml", "a", encoding="utf-8") as jobs:
        jobs.write(COMMIT_JOB)
    return root


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies waiting to be reaped do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _start_runner(bundle: Path, home: Path) -> subprocess.Popen:
    """``run_job('committing')`` in its own process (and session, so the test can end it alone)."""
    code = ("import sys; from healthcare_mlops.bundle.runner import run_job; "
            "run_job('committing', bundle_root=sys.argv[1], home=sys.argv[2], echo=False)")
    return subprocess.Popen([sys.executable, "-c", code, str(bundle), str(home)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _task_started(home: Path, runner: subprocess.Popen) -> dict:
    assert _wait_for(lambda: (home / "task.json").exists() or runner.poll() is not None, 60), "the task never started"
    assert (home / "task.json").exists(), runner.stderr.read()
    return json.loads((home / "task.json").read_text())


def _history(home: Path):
    settings = Settings(target="local", catalog=LOCAL_OVERRIDES["catalog"], schema=LOCAL_OVERRIDES["schema"],
                        home=home)
    return read_runs(settings)


@pytest.fixture
def task_groups():
    """Process groups a test started; whatever a failing test leaves running is ended."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        if pgid != os.getpgrp():
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass        # already gone, as it should be


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_runner_ends_its_task_group_and_records_the_run(committing_bundle, home, task_groups, stop):
    home.mkdir(parents=True)
    runner = _start_runner(committing_bundle, home)
    task_groups.append(runner.pid)
    task = _task_started(home, runner)
    task_groups.append(task["pgid"])
    assert task["pgid"] != runner.pid                 # the task leads a process group of its own
    runner.send_signal(stop)
    runner.wait(timeout=30)
    assert _wait_for(lambda: not _group_alive(task["pgid"]), 10), "the task's processes outlived the runner"
    assert not (home / "committed").exists()
    history = _history(home)
    job = history[history["parent_run_id"].isna()].iloc[0]
    name = signal.Signals(stop).name
    assert job["status"] == "CANCELED" and job["error"] == ("interrupted" if stop == signal.SIGINT
                                                            else f"interrupted ({name})")
    assert list(history[history["parent_run_id"] == job["run_id"]]["status"]) == ["CANCELED"]
    assert not list((home / "run_markers").glob("*.json"))        # recorded, so no marker is left


def test_a_killed_runner_is_recorded_as_interrupted_at_the_next_start(committing_bundle, home, task_groups):
    home.mkdir(parents=True)
    runner = _start_runner(committing_bundle, home)
    task_groups.append(runner.pid)
    task = _task_started(home, runner)
    task_groups.append(task["pgid"])
    runner.kill()                                             # SIGKILL: no cleanup is possible
    runner.wait(timeout=30)
    assert _group_alive(task["pgid"])                         # orphaned, on its way to commit
    assert _history(home).empty                               # and nothing in job_runs says so

    bundle = load_bundle(committing_bundle)
    next_run = run_job("chain", bundle=bundle, home=home, echo=False)      # the next runner start
    assert next_run.succeeded
    assert _wait_for(lambda: not _group_alive(task["pgid"]), 10)
    assert not (home / "committed").exists()
    history = _history(home)
    killed = history[(history["job_key"] == "committing") & history["parent_run_id"].isna()]
    assert len(killed) == 1 and killed.iloc[0]["status"] == "INTERRUPTED"
    reason = killed.iloc[0]["error"]
    assert f"runner (pid {runner.pid}) ended" in reason and "task 'commit' was running" in reason
    assert f"group {task['pgid']}" in reason
    tasks = history[history["parent_run_id"] == killed.iloc[0]["run_id"]]
    assert list(tasks["task_key"]) == ["commit"] and list(tasks["status"]) == ["INTERRUPTED"]
    run_job("chain", bundle=bundle, home=home, echo=False)                 # reconciled once, not again
    assert (_history(home)["status"] == "INTERRUPTED").sum() == 2


def test_a_run_whose_runner_still_works_is_left_alone(committing_bundle, home, task_groups):
    home.mkdir(parents=True)
    runner = _start_runner(committing_bundle, home)
    task_groups.append(runner.pid)
    task = _task_started(home, runner)
    task_groups.append(task["pgid"])
    run_job("chain", bundle=load_bundle(committing_bundle), home=home, echo=False)
    assert _group_alive(task["pgid"]) and runner.poll() is None
    assert "INTERRUPTED" not in set(_history(home)["status"])
    runner.terminate()
    runner.wait(timeout=30)


# -- numeric bounds -----------------------------------------------------------------------------------

CHARGES_HEADER = "age,sex,bmi,children,smoker,region,charges"
CHARGES_CASES = {  # the charges field -> the quarantine reason (None: the row loads)
    "10000000": None,                                   # the upper bound itself
    "63770.43": None,                                   # the public table's maximum
    "10000000.01": r"charges above the upper bound 10,000,000 \(data/contract.py\), got 1\.000000001E7",
    "1e308": r"charges above the upper bound 10,000,000 \(data/contract.py\), got 1\.0E308",
    "1e309": r"charges above the upper bound 10,000,000 \(data/contract.py\), got Infinity",
    "inf": r"not a finite number: 'inf'",
    "-Infinity": r"not a finite number: '-Infinity'",
    "nan": r"not a finite number: 'nan'",
    "-5": r"charges must be > 0, got -5\.0",
}


def test_charges_out_of_bounds_are_quarantined_naming_the_bound(spark, settings, tmp_path):
    import re

    from healthcare_mlops.data.contract import CHARGES_RANGE
    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
    from healthcare_mlops.spark.patient_load import ingest_csv
    from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, SILVER_PATIENTS

    assert CHARGES_RANGE[1] > 63_770 * 100                         # generous: far above the public maximum
    charges = list(CHARGES_CASES)
    # each row differs in age too, so no row is a duplicate of another
    lines = [CHARGES_HEADER] + [f"{20 + i},female,27.9,0,no,southwest,{c}" for i, c in enumerate(charges)]
    path = tmp_path / "charges.csv"
    path.write_text("\n".join(lines) + "\n")
    report = ingest_csv(settings, path, __import__("datetime").date(2025, 3, 1))
    catalog = DeltaCatalog(settings)
    quarantine = catalog.read_arrow(DATA_QUALITY_QUARANTINE).to_pandas()
    loaded = catalog.read_arrow(SILVER_PATIENTS).to_pandas()
    reasons = dict(zip(quarantine["source_row"], quarantine["reason"]))
    for line, value in enumerate(charges, start=2):
        expected = CHARGES_CASES[value]
        if expected is None:
            assert line not in reasons and (loaded["source_row"] == line).sum() == 1, value
        else:
            assert re.fullmatch(expected, reasons.get(line, "")), (value, reasons.get(line))
            assert set(quarantine[quarantine["source_row"] == line]["column_name"]) == {"charges"}
    assert report.rows_quarantined == sum(v is not None for v in CHARGES_CASES.values())
    assert loaded["annual_charges"].max() <= CHARGES_RANGE[1]


NON_FINITE_OR_OUT_OF_RANGE = [("bmi", 1e308), ("bmi", float("inf")), ("bmi", float("nan")),
                              ("age", float("-inf")), ("children", 1e308), ("age", 1e308)]


def test_real_time_scoring_refuses_non_finite_and_out_of_range_numbers(pipeline_home):
    """The champion's pyfunc, as the scoring server runs it: a 400 naming the field."""
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from healthcare_mlops.modeling.artifacts import CHAMPION
    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
    from healthcare_mlops.settings import resolve_settings

    settings = resolve_settings("local", pipeline_home)
    configure_mlflow(settings)
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    good = {"age": 40, "bmi": 30.0, "children": 1, "smoker": False, "region": "northeast"}
    assert len(model.predict(pd.DataFrame([good]))) == 1
    for field, value in NON_FINITE_OR_OUT_OF_RANGE:
        with pytest.raises(MlflowException) as refused:
            model.predict(pd.DataFrame([{**good, field: value}]))
        assert refused.value.get_http_status_code() == 400, (field, value)
        assert f"{field}: " in refused.value.message, (field, value, refused.value.message)
