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
    assert _wait_for(lambda: not _group_alive(task["pgid"]), 10), "the task's processes outlived the runner"
    assert not (home / "committed").exists()
    history = _history(home)
    job = history[history["parent_run_id"].isna()].iloc[0]
    name = signal.Signals(stop).name
    assert job["status"] == "CANCELED" and job["error"] == ("interrupted" if stop == signal.SIGINT
                                                            else f"interrupted ({name})")
    assert list(history[history["parent_run_id"] == job["run_id"]]["status"]) == ["CANCELED"]
    assert not list((home / "run_markers").glob("*.json"))        # recorded, so no marker is left


@pytest.mark.slow
def test_a_killed_runner_is_recorded_as_interrupted_at_the_next_start(committing_bundle, home, task_groups):
    runner, task = _runner_inside_its_task(committing_bundle, home, task_groups)
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


@pytest.mark.slow
def test_a_run_whose_runner_still_works_is_left_alone(committing_bundle, home, task_groups):
    runner, task = _runner_inside_its_task(committing_bundle, home, task_groups)
    run_job("chain", bundle=load_bundle(committing_bundle), home=home, echo=False)
    assert _group_alive(task["pgid"]) and runner.poll() is None
    assert "INTERRUPTED" not in set(_history(home)["status"])
    runner.terminate()
    runner.wait(timeout=30)


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
    "-5": r"charges must be > 0, got -5\.0",
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
    thresholds = GovernanceThresholds.from_variables(resolve_settings("local").variables)
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
