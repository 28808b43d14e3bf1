"""Attacks on the runtime (issue 13, part D): a killed runner, numbers out of bounds, member
rows in MLflow artifacts, personal data in values, and the static security scan.

Real processes, real Delta tables, the real MLflow registry of the session's trained pipeline.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.emulator.run_history import read_runs
from healthcare_mlops.emulator.runner import run_job
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
    code = ("import sys; from healthcare_mlops.emulator.runner import run_job; "
            "run_job('committing', bundle_root=sys.argv[1], home=sys.argv[2], echo=False)")
    return subprocess.Popen([sys.executable, "-c", code, str(bundle), str(home)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _task_started(home: Path, runner: subprocess.Popen) -> dict:
    assert _wait_for(lambda: (home / "task.json").exists() or runner.poll() is not None, 60), "the task never started"
    assert (home / "task.json").exists(), runner.stderr.read()
    return json.loads((home / "task.json").read_text())


def _settings(home: Path) -> Settings:
    return Settings(target="local", catalog=LOCAL_OVERRIDES["catalog"], schema=LOCAL_OVERRIDES["schema"], home=home)


def _history(home: Path):
    return read_runs(_settings(home))


def _audit(home: Path, job_key: str) -> list[tuple[str, str]]:
    """(action, comment) of the audit log's rows about ``job_key``'s runs, oldest first."""
    from healthcare_mlops.governance import audit
    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
    from healthcare_mlops.tables import MODEL_GOVERNANCE_LOG

    catalog = DeltaCatalog(_settings(home))
    if not catalog.exists(MODEL_GOVERNANCE_LOG):
        return []
    rows = catalog.read_pandas(MODEL_GOVERNANCE_LOG).sort_values("event_time", kind="stable")
    rows = rows[rows["action"].isin([audit.JOB_STARTED, audit.JOB_ENDED]) & rows["comment"].str.startswith(job_key)]
    return list(zip(rows["action"], rows["comment"]))


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


def _runner_inside_its_task(bundle_root, home, task_groups):
    """A runner started in the background, once its task has started; both groups are cleaned up."""
    home.mkdir(parents=True)
    runner = _start_runner(bundle_root, home)
    task_groups.append(runner.pid)
    task = _task_started(home, runner)
    task_groups.append(task["pgid"])
    return runner, task


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_runner_ends_its_task_group_and_records_the_run(committing_bundle, home, task_groups, stop):
    runner, task = _runner_inside_its_task(committing_bundle, home, task_groups)
    assert task["pgid"] != runner.pid                 # the task leads a process group of its own
    runner.send_signal(stop)
    runner.wait(timeout=30)
    assert _wait_for(lambda: not _group_alive(task["pgid"]), 30), "the task's processes outlived the runner"
    assert not (home / "committed").exists()
    history = _history(home)
    job = history[history["parent_run_id"].isna()].iloc[0]
    name = signal.Signals(stop).name
    assert job["status"] == "CANCELED" and job["error"] == ("interrupted" if stop == signal.SIGINT
                                                            else f"interrupted ({name})")
    assert list(history[history["parent_run_id"] == job["run_id"]]["status"]) == ["CANCELED"]
    assert not list((home / "run_markers").glob("*.json"))        # recorded, so no marker is left
    # issue 24, item 6: the audit log has the run's start and its end, cancelled by the signal
    assert _audit(home, "committing") == [("job run started", f"committing run {job['run_id']}"),
                                          ("job run ended", f"committing run {job['run_id']} CANCELED: {job['error']}")]


@pytest.mark.slow
def test_a_killed_runner_is_recorded_as_interrupted_at_the_next_start(committing_bundle, home, task_groups):
    runner, task = _runner_inside_its_task(committing_bundle, home, task_groups)
    runner.kill()                                             # SIGKILL: no cleanup is possible
    runner.wait(timeout=30)
    assert _group_alive(task["pgid"])                         # orphaned, on its way to commit
    assert _history(home).empty                               # and nothing in job_runs says so
    assert [action for action, _ in _audit(home, "committing")] == ["job run started"]

    bundle = load_bundle(committing_bundle)
    next_run = run_job("chain", bundle=bundle, home=home, echo=False)      # the next runner start
    assert next_run.succeeded
    assert _wait_for(lambda: not _group_alive(task["pgid"]), 10)
    assert not (home / "committed").exists()
    history = _history(home)
    killed = history[(history["job_key"] == "committing") & history["parent_run_id"].isna()]
    assert len(killed) == 1 and killed.iloc[0]["status"] == "INTERRUPTED"
    reason = killed.iloc[0]["error"]
    assert f"runner (pid {runner.pid}) died" in reason and "task 'commit' was running" in reason
    assert f"group {task['pgid']}" in reason
    # issue 24, item 6: whoever next sees the orphan writes the run's end to the audit log, naming the death
    run_id = killed.iloc[0]["run_id"]
    assert _audit(home, "committing") == [("job run started", f"committing run {run_id}"),
                                          ("job run ended", f"committing run {run_id} INTERRUPTED: {reason}")]
    tasks = history[history["parent_run_id"] == killed.iloc[0]["run_id"]]
    assert list(tasks["task_key"]) == ["commit"] and list(tasks["status"]) == ["INTERRUPTED"]
    run_job("chain", bundle=bundle, home=home, echo=False)                 # reconciled once, not again
    assert (_history(home)["status"] == "INTERRUPTED").sum() == 2


@pytest.mark.slow
def test_a_run_whose_runner_still_works_is_left_alone(committing_bundle, home, task_groups):
    runner, task = _runner_inside_its_task(committing_bundle, home, task_groups)
    run_job("chain", bundle=load_bundle(committing_bundle), home=home, echo=False)
    assert _group_alive(task["pgid"]) and runner.poll() is None
    assert "INTERRUPTED" not in set(_history(home)["status"])
    runner.terminate()
    runner.wait(timeout=30)


# -- one run at a time, as the bundle says (issue 24, item 6) --------------------------------------

SLOW_TASK = '''"""Note this run's start and end (wall clock) in the home, three seconds apart."""
import os, sys, time
from pathlib import Path

log = Path(os.environ["HEALTHCARE_MLOPS_HOME"]) / "slow.log"
with open(log, "a") as out:
    out.write(f"start {sys.argv[1]} {time.time()}\\n")
time.sleep(3)
with open(log, "a") as out:
    out.write(f"end {sys.argv[1]} {time.time()}\\n")
'''

REWRITE_TASK = '''"""Rewrite the predictions table, say so, then keep running as an orphan would."""
import json, os, time
from pathlib import Path

import pyarrow as pa

from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import LOCAL_OVERRIDES, Settings
from healthcare_mlops.tables import ML_PATIENT_PREDICTIONS

home = Path(os.environ["HEALTHCARE_MLOPS_HOME"])
settings = Settings(target="local", catalog=LOCAL_OVERRIDES["catalog"], schema=LOCAL_OVERRIDES["schema"], home=home)
DeltaCatalog(settings).write(pa.table({"model_version": ["9"]}), ML_PATIENT_PREDICTIONS)
(home / "task.tmp").write_text(json.dumps({"pid": os.getpid(), "pgid": os.getpgrp()}))
os.replace(home / "task.tmp", home / "task.json")
time.sleep(60)
'''

LIMITED_JOB = '''
    {key}:
      name: {key}-${{bundle.target}}
      max_concurrent_runs: 1{queue}
      tasks:
        - task_key: work
          spark_python_task:
            python_file: ../tasks/slow.py
            parameters: ["{{{{job.run_id}}}}"]
'''
REWRITING_JOB = '''
    rewriting:
      name: rewriting-${bundle.target}
      tasks:
        - task_key: rewrite
          spark_python_task:
            python_file: ../tasks/rewrite.py
'''


@pytest.fixture
def limited_bundle(committing_bundle):
    """The committing bundle plus jobs limited to one run at a time (queued or refused) and a job whose
    task rewrites the predictions table and then runs on."""
    (committing_bundle / "tasks" / "slow.py").write_text(SLOW_TASK)
    (committing_bundle / "tasks" / "rewrite.py").write_text(REWRITE_TASK)
    with open(committing_bundle / "resources" / "jobs.yml", "a", encoding="utf-8") as jobs:
        jobs.write(LIMITED_JOB.format(key="queued", queue="\n      queue:\n        enabled: true")
                   + LIMITED_JOB.format(key="refused", queue="") + REWRITING_JOB)
    return committing_bundle


def _runner(bundle: Path, home: Path, job_key: str) -> subprocess.Popen:
    code = ("import sys; from healthcare_mlops.emulator.runner import run_job; "
            "sys.exit(0 if run_job(sys.argv[3], bundle_root=sys.argv[1], home=sys.argv[2]).succeeded else 1)")
    return subprocess.Popen([sys.executable, "-c", code, str(bundle), str(home), job_key], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _slow_log(home: Path) -> list[tuple[str, str]]:
    path = home / "slow.log"
    return [tuple(line.split()[:2]) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow      # real runner processes
def test_a_second_run_of_a_job_at_its_limit_waits_in_the_queue(limited_bundle, home, task_groups):
    """Attack (issue 24, item 6): two runs of a max_concurrent_runs 1 job started at once. Before, both
    ran together (two model_training runs, the second replacing the first's challenger)."""
    home.mkdir(parents=True)
    runners = [_runner(limited_bundle, home, "queued") for _ in range(2)]
    task_groups.extend(r.pid for r in runners)
    outputs = [r.communicate(timeout=120)[0] for r in runners]
    assert [r.returncode for r in runners] == [0, 0], outputs
    events = _slow_log(home)
    assert [kind for kind, _ in events] == ["start", "end", "start", "end"], events    # one after the other
    assert events[0][1] == events[1][1] and events[2][1] == events[3][1]
    assert sum("queued behind run" in output for output in outputs) == 1
    runs = _history(home)
    assert list(runs[runs["parent_run_id"].isna()]["status"]) == ["SUCCEEDED", "SUCCEEDED"]


@pytest.mark.slow      # real runner processes
def test_a_run_of_a_job_at_its_limit_without_a_queue_is_refused(limited_bundle, home, task_groups):
    """Attack (issue 24, item 6): without queue.enabled a second run is refused, naming the limit."""
    from healthcare_mlops.errors import UserError

    home.mkdir(parents=True)
    first = _runner(limited_bundle, home, "refused")
    task_groups.append(first.pid)
    assert _wait_for(lambda: _slow_log(home), 60), first.stdout.read()
    bundle = load_bundle(limited_bundle)
    with pytest.raises(UserError, match=r"'refused' is at its max_concurrent_runs \(1\).*queue is not enabled"):
        run_job("refused", bundle=bundle, home=home, echo=False)
    assert first.wait(timeout=60) == 0
    assert run_job("refused", bundle=bundle, home=home, echo=False).succeeded        # the slot is free again
    assert [kind for kind, _ in _slow_log(home)] == ["start", "end", "start", "end"]


def test_the_real_jobs_declare_one_run_at_a_time_with_a_queue():
    """The runner reads the bundle's own limits: model_training is one run at a time, queued."""
    from healthcare_mlops.emulator.runner import plan_job

    plan = plan_job("model_training")
    assert plan.max_concurrent_runs == 1 and plan.queue


@pytest.mark.slow      # real runner processes
def test_every_run_has_a_start_and_an_end_in_the_audit_log(limited_bundle, home):
    """Attack (issue 24, item 6): runs that succeed and fail each leave a start and an end row."""
    bundle = load_bundle(limited_bundle)
    ok = run_job("chain", bundle=bundle, home=home, echo=False)
    failed = run_job("failing", bundle=bundle, home=home, echo=False)
    assert _audit(home, "chain") == [("job run started", f"chain run {ok.run_id}"),
                                     ("job run ended", f"chain run {ok.run_id} SUCCEEDED")]
    rows = _audit(home, "failing")
    assert rows[0] == ("job run started", f"failing run {failed.run_id}")
    assert rows[1][0] == "job run ended" and rows[1][1].startswith(f"failing run {failed.run_id} FAILED: task ")


@pytest.mark.slow      # real runner processes
def test_an_orphaned_task_that_rewrote_predictions_is_named_when_found(limited_bundle, home, task_groups):
    """Attack (issue 24, item 6): the runner is killed (SIGKILL) after its task rewrote the predictions.
    The next runner start ends the orphan and the run's end row names the table it committed to."""
    home.mkdir(parents=True)
    runner = _runner(limited_bundle, home, "rewriting")
    task_groups.append(runner.pid)
    task = _task_started(home, runner)
    task_groups.append(task["pgid"])
    runner.kill()
    runner.wait(timeout=30)
    run_job("chain", bundle=load_bundle(limited_bundle), home=home, echo=False)
    assert _wait_for(lambda: not _group_alive(task["pgid"]), 10)
    runs = _history(home)
    killed = runs[(runs["job_key"] == "rewriting") & runs["parent_run_id"].isna()].iloc[0]
    assert killed["status"] == "INTERRUPTED"
    assert "committed since the task started: ml_patient_predictions (version 0" in killed["error"]
    ended = _audit(home, "rewriting")[-1]
    assert ended[0] == "job run ended" and "died" in ended[1] and "ml_patient_predictions (version 0" in ended[1]


# -- numeric bounds -----------------------------------------------------------------------------------

CHARGES_CASES = {  # the charges field -> the quarantine reason (None: the row loads)
    "10000000": None,                                   # the upper bound itself
    "63770.43": None,                                   # the public table's maximum
    "10000000.01": r"charges above the upper bound 10,000,000 \(data/contract.py\), got 1\.000000001E7",
    "1e308": r"charges above the upper bound 10,000,000 \(data/contract.py\), got 1\.0E308",
    "1e309": r"charges above the upper bound 10,000,000 \(data/contract.py\), got Infinity",
    "inf": r"not a finite number: 'inf'",
    "-Infinity": r"not a finite number: '-Infinity'",
    "nan": r"not a finite number: 'nan'",
    "-5": r"charges below the lower bound 1 \(data/contract.py\), got -5\.0",
    "1e-320": r"charges below the lower bound 1 \(data/contract.py\), got [0-9.]+E-3[0-9]{2}",
    "1": None,                                          # the lower bound itself
}


def test_charges_out_of_bounds_are_quarantined_naming_the_bound(spark):
    """The ingest's own parsing and validation (Spark) on CSV fields, one charges value per row."""
    import pandas as pd
    from pyspark.sql import functions as F

    from healthcare_mlops.data.contract import CHARGES_RANGE, SOURCE_COLUMNS
    from healthcare_mlops.spark.validation import parse_source_columns, validate

    assert CHARGES_RANGE[1] > 63_770 * 100                         # generous: far above the public maximum
    charges = list(CHARGES_CASES)
    fields = [[str(20 + i), "female", "27.9", "0", "no", "southwest", c] for i, c in enumerate(charges)]
    raw = pd.DataFrame(fields, columns=[f"raw_{c}" for c in SOURCE_COLUMNS])
    raw["source_row"] = range(2, len(fields) + 2)
    raw["raw_record"] = [json.dumps(f) for f in fields]
    parsed = (parse_source_columns(spark.createDataFrame(raw))
              .withColumn("patient_natural_key", F.concat(F.lit("ING-charges-"), F.col("source_row").cast("string")))
              .withColumn("source", F.lit("charges.csv")).withColumn("as_of_date", F.lit(dt.date(2025, 3, 1))))
    validated = validate(parsed, ["source_row"], from_raw=True, stage="ingest", duplicate_column="row")
    rejected = validated.rejected.toPandas()
    loaded = validated.valid.select("source_row", "annual_charges").toPandas()
    reasons = dict(zip(rejected["source_row"], rejected["reason"]))
    for line, value in enumerate(charges, start=2):
        expected = CHARGES_CASES[value]
        if expected is None:
            assert line not in reasons and (loaded["source_row"] == line).sum() == 1, value
        else:
            assert re.fullmatch(expected, reasons.get(line, "")), (value, reasons.get(line))
            assert set(rejected[rejected["source_row"] == line]["column_name"]) == {"charges"}
    assert len(rejected) + len(loaded) == len(charges)             # nothing silently lost
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


# -- personal data in values ------------------------------------------------------------------------

CLEAN = {"region": ["northeast", "southeast"], "age_band": ["18-29", "60+"], "model_name": ["m", "m"],
         "review_reasons": ["critical_risk", ""], "scoring_date": ["2026-01-01", "2026-01-02"],
         "patient_natural_key": ["PNK-000000001", "PNK-000000002"], "actor": ["owner@example.com", "ops"],
         "predicted_annual_charges": [1234.5, 20000.0], "column_name": ["bmi", "age"]}
PLANTED = {  # a value planted in a text column -> what the check must say
    "123-45-6789": "holds what looks like an SSN",
    "call 555-867-5309 after 5": "holds what looks like a phone number",
    "(212) 555-0100": "holds what looks like a phone number",
    "jane.doe@mail.example.org": "holds what looks like an e-mail address",
    "M0123456789": "holds member keys of silver_patients",
    "PNK-000000002": "holds member keys of silver_patients",
}
SILVER_KEYS = frozenset({"PNK-000000001", "PNK-000000002", "M0123456789"})


def test_the_value_scan_passes_clean_data():
    import pandas as pd

    from healthcare_mlops.privacy import personal_data

    assert personal_data(pd.DataFrame(CLEAN), "predictions", SILVER_KEYS, key_column="patient_natural_key") == []


@pytest.mark.parametrize("value", list(PLANTED))
def test_the_value_scan_refuses_each_planted_pattern(value):
    import pandas as pd

    from healthcare_mlops.privacy import personal_data

    frame = pd.DataFrame({**CLEAN, "review_reasons": ["critical_risk", value]})
    found = personal_data(frame, "predictions", SILVER_KEYS, key_column="patient_natural_key")
    assert found == [f"predictions: column 'review_reasons' {PLANTED[value]}"]


def test_the_scan_names_identifier_columns_and_keys_outside_the_key_column():
    import pandas as pd

    from healthcare_mlops.privacy import personal_data

    frame = pd.DataFrame({"zip_code": ["10001"], "age": [40], "sex": ["female"], "member": ["PNK-000000001"]})
    assert personal_data(frame, "artifact", SILVER_KEYS) == [
        "artifact: column 'zip_code' names an identifier",
        "artifact: column 'member' holds member keys of silver_patients"]


def _silver(pipeline_home):
    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tables import SILVER_PATIENTS

    return DeltaCatalog(resolve_settings("local", pipeline_home)).read_arrow(SILVER_PATIENTS).to_pandas()


def test_tables_past_the_feature_step_hold_no_personal_data(pipeline_home):
    from healthcare_mlops.privacy import MEMBER_KEY, member_keys, personal_data
    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tables import DEIDENTIFIED_TABLES, ML_INSURANCE_FEATURES, MODEL_GOVERNANCE_LOG

    catalog = DeltaCatalog(resolve_settings("local", pipeline_home))
    keys = member_keys(_silver(pipeline_home))
    scanned = [name for name in DEIDENTIFIED_TABLES if catalog.exists(name)]
    assert {ML_INSURANCE_FEATURES, MODEL_GOVERNANCE_LOG} <= set(scanned)
    for name in scanned:
        assert personal_data(catalog.read_arrow(name).to_pandas(), name, keys, key_column=MEMBER_KEY) == []


# -- member rows in MLflow artifacts ----------------------------------------------------------------

def _artifact_files(pipeline_home) -> dict:
    """Every file the champion's training run and its registered model logged: {path: local file}."""
    import mlflow

    from healthcare_mlops.modeling.artifacts import CHAMPION
    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
    from healthcare_mlops.settings import resolve_settings

    settings = resolve_settings("local", pipeline_home)
    client = configure_mlflow(settings)
    version = client.get_model_version_by_alias(settings.model_name, CHAMPION)
    roots = {"run": Path(mlflow.artifacts.download_artifacts(run_id=version.run_id)),
             "model": Path(mlflow.artifacts.download_artifacts(f"models:/{settings.model_name}/{version.version}"))}
    return {f"{name}:{path.relative_to(root)}": path for name, root in roots.items()
            for path in sorted(root.rglob("*")) if path.is_file()}


def _as_frame(path: Path):
    """A tabular artifact as a DataFrame (parquet, JSON records or pandas split), else None."""
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix != ".json":
        return None
    data = json.loads(path.read_text())
    data = data.get("dataframe_split", data) if isinstance(data, dict) else data
    if isinstance(data, dict) and {"columns", "data"} <= set(data):
        return pd.DataFrame(data["data"], columns=data["columns"])
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        return pd.DataFrame(data)
    return None


# Attributes with enough distinct values that a row matching on them is one member's row.
INDIVIDUAL = {"age", "bmi", "annual_charges", "zip_code", "date_of_birth"}


def test_no_mlflow_artifact_holds_member_rows(pipeline_home):
    from healthcare_mlops.privacy import VALUE_PATTERNS, member_keys, personal_data

    silver = _silver(pipeline_home)
    keys = member_keys(silver)
    files = _artifact_files(pipeline_home)
    assert any(p.endswith("input_example.json") for p in files) and any("reference" in p for p in files)
    key_like = re.compile(r"(PNK-|ING-)[A-Za-z0-9-]+|M\d{10}")
    tables = 0
    for where, path in files.items():
        text = path.read_bytes().decode("latin-1")
        assert not {m.group(0) for m in key_like.finditer(text)} & keys, where
        if path.suffix in (".json", ".md", ".txt", ".yaml", "") or path.name == "MLmodel":
            assert not any(p.search(text) for p in (VALUE_PATTERNS["an SSN"], VALUE_PATTERNS["a phone number"])), where
        frame = _as_frame(path)
        if frame is None:
            continue
        tables += 1
        assert personal_data(frame, where, keys) == []
        assert not {"patient_natural_key", "member_id"} & set(frame.columns), where
        assert not {"age", "sex"} <= set(frame.columns) or not {"zip3", "zip_code"} & set(frame.columns), where
        shared = [c for c in frame.columns if c in silver.columns]
        if set(shared) & INDIVIDUAL and len(frame):       # categories alone match anyone
            left = frame[shared].astype(str).drop_duplicates()
            right = silver[shared].astype(str).drop_duplicates()
            assert left.merge(right, on=shared).empty, f"{where}: rows equal silver rows on {shared}"
    assert tables >= 4            # reference counts, group evidence, group metrics, input examples


# -- the static security scan ------------------------------------------------------------------------

@pytest.mark.slow
def test_ci_runs_bandit_and_the_code_has_no_unjustified_medium_or_high_finding():
    ci = (REPO / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if "bandit" in line and not line.startswith("#"))
    assert "-r src app pages jobs" in command and "--severity-level medium" in command
    assert ci.index(command) < ci.index("./quickstart test -q")        # before the tests, so it gates CI
    bandit = Path(sys.executable).with_name("bandit")
    scan = subprocess.run([str(bandit), "-q", "-r", "src", "app", "pages", "jobs", "--severity-level", "medium",
                           "-f", "json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    report = json.loads(scan.stdout)
    assert [f"{r['filename']}:{r['line_number']} {r['test_id']}" for r in report["results"]] == []
    assert scan.returncode == 0
    skipped = [line for path in (REPO / "src", REPO / "app") for f in path.rglob("*.py")
               for line in f.read_text().splitlines() if "# nosec" in line]
    # each with its reason as a second comment (bandit reads words after "nosec" as test ids)
    assert skipped and all(re.search(r"# nosec B\d{3}(, B\d{3})*\s+# \S", line) for line in skipped)


def test_the_logged_group_evidence_gives_the_verdicts_the_member_rows_give():
    """Governance judges sums, not rows: the same checks, intervals and group metrics."""
    import numpy as np
    import pandas as pd

    from healthcare_mlops.features.definitions import FAIRNESS_GROUP_COLUMNS
    from healthcare_mlops.governance.checks import fairness_checks, four_fifths_check
    from healthcare_mlops.governance.group_evidence import GroupEvidence
    from healthcare_mlops.governance.thresholds import GovernanceThresholds
    from healthcare_mlops.modeling.training import group_metrics
    from healthcare_mlops.parameters import governance_thresholds
    from healthcare_mlops.settings import resolve_settings

    rng = np.random.default_rng(5)
    n = 3000
    actual = rng.gamma(2.0, 6000.0, n)
    rows = pd.DataFrame({"sex": rng.choice(["female", "male"], n), "region": rng.choice(["northeast", "south"], n),
                         "age_band": rng.choice(["18-29", "30-39", "60+"], n), "smoker": rng.random(n) < 0.2,
                         "family_size_category": rng.choice(["individual", "large"], n),
                         "annual_charges": actual, "predicted_annual_charges": actual * rng.normal(1.0, 0.2, n)})
    rows.loc[rows["sex"] == "female", "predicted_annual_charges"] *= 1.15
    rows["critical"] = rows["predicted_annual_charges"] >= rows["predicted_annual_charges"].quantile(0.95)
    thresholds = governance_thresholds(resolve_settings("local").variables)
    logged = GroupEvidence.from_frame(GroupEvidence.from_rows(rows, FAIRNESS_GROUP_COLUMNS).to_frame())
    assert logged.samples == 1000 >= thresholds.fairness_bootstrap_samples
    assert [c.as_dict() for c in fairness_checks(logged, thresholds)] == \
        [c.as_dict() for c in fairness_checks(rows, thresholds)]
    assert four_fifths_check(logged, thresholds) == four_fifths_check(rows, thresholds)
    expected = pd.DataFrame(group_metrics(rows, FAIRNESS_GROUP_COLUMNS)).sort_values(["group_column", "group_value"])
    got = pd.DataFrame(logged.group_metrics()).sort_values(["group_column", "group_value"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True), rtol=1e-9)
    too_many = GovernanceThresholds(**{**thresholds.__dict__, "fairness_bootstrap_samples": 1001})
    refused = {c.name: c for c in fairness_checks(logged, too_many)}["calibration_sex"]
    assert refused.verdict == "fail" and "holds 1000 bootstrap samples" in refused.detail
