"""Monitoring in Spark and end to end: the counts against scipy, the job, alerts, retraining, scenarios.

The scenario tests build on one scored day: a copy of the shared pipeline lakehouse (20k
members as of 2026-01-01 and a champion) scored by the real batch_inference task. Each
scenario then loads 2026-01-02 with ``data generate``'s code (2,000 new members, every
existing member carried forward, the scenario applied), featurizes, scores and monitors it
with the real jobs: ``baseline`` through the local runner (its plan, parameters and run ids, as
``healthcare-mlops jobs run`` runs them; the job files in this process: tests/in_process_tasks.py),
the others through the same task functions. The job processes are tested where they are the
subject: the killed run below (its rerun, the repair, runs the job file in this process), and
tests/test_spark_connect.py's loop of every job.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis import strategies as s
from scipy.stats import ks_2samp, wasserstein_distance
from typer.testing import CliRunner

from healthcare_mlops.bundle.run_states import SUCCEEDED
from healthcare_mlops.composition import build_runtime, cli_runtime
from healthcare_mlops.errors import UserError
from healthcare_mlops.governance.audit import ACKNOWLEDGED
from healthcare_mlops.runtime.catalog import audit_log
from healthcare_mlops.identity import Identity
from healthcare_mlops.monitoring import alerts as al
from healthcare_mlops.monitoring import evaluation as ev
from healthcare_mlops.monitoring import performance as perf
from healthcare_mlops.monitoring import retrain
from healthcare_mlops.monitoring import statistics as st
from healthcare_mlops.monitoring.contract import ALERT_TYPES, SEVERITIES
from healthcare_mlops.monitoring.serving_traffic import TrafficThresholds
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tables import ML_DRIFT_METRICS, ML_FAIRNESS_METRICS, ML_MODEL_ALERTS, ML_PATIENT_PREDICTIONS

from in_process_tasks import run_task_in_this_process, tasks_in_this_process
from test_monitoring_statistics import REFERENCE, THRESHOLDS, counts_of, population

TRAFFIC = TrafficThresholds(serving_error_rate_alert=0.05)

FIXTURE_BUNDLE = Path(__file__).resolve().parent / "fixtures" / "bundles" / "runner"
DAY1, DAY2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
OPERATOR = Identity("ops@example.com", "operator")


# -- the Spark reduction against numpy and scipy ----------------------------------------------
def spark_counts(spark, current: pd.DataFrame, reference: pd.DataFrame, specs, partitions=None) -> pd.DataFrame:
    from healthcare_mlops.monitoring.drift import reference_counts, value_counts

    frame = spark.createDataFrame(current)
    if partitions:
        frame = frame.repartition(partitions)
    return value_counts(frame, reference_counts(reference, specs), specs)


def canonical(counts: pd.DataFrame) -> pd.DataFrame:
    keys = ["side", "column_name", "num", "bin"]
    frame = counts.assign(num=counts["num"].astype(float), bin=counts["bin"].astype(int))
    return frame.groupby(keys, dropna=False)["count"].sum().reset_index().sort_values(keys).reset_index(drop=True)


@pytest.fixture(scope="module")
def frames():
    return population(6000, 11, smoker=0.3), population(15000, 12)


def test_spark_counts_equal_the_numpy_twin(spark, frames):
    current, reference = frames
    specs = ev.column_specs(REFERENCE)
    ours = canonical(spark_counts(spark, current, reference, specs))
    twin = canonical(pd.concat([counts_of(current, specs, ev.CURRENT_SIDE),
                                counts_of(reference, specs, ev.REFERENCE_SIDE)]))
    pd.testing.assert_frame_equal(ours, twin, check_dtype=False)


def test_statistics_from_spark_counts_match_scipy(spark, frames):
    current, reference = frames
    specs = ev.column_specs(REFERENCE)
    drifts = ev.drift_by_column(specs, spark_counts(spark, current, reference, specs))
    for column in ("age", "children", "bmi"):          # whole numbers, and bmi with 2 decimals: exact
        theirs = ks_2samp(reference[column].astype(float), current[column].astype(float), method="asymp")
        metrics = drifts[column].metrics
        assert metrics["ks_statistic"] == pytest.approx(theirs.statistic, abs=1e-12), column
        assert metrics["ks_pvalue"] == pytest.approx(theirs.pvalue, abs=1e-9), column
        std = REFERENCE["numeric"][column]["std"]
        assert metrics["wasserstein_norm"] == pytest.approx(
            wasserstein_distance(reference[column], current[column]) / std, rel=1e-9), column
        edges = st.numeric_edges(REFERENCE["numeric"][column]["deciles"])
        expected = [np.bincount(st.assign_numeric_bins(f[column], edges), minlength=len(edges) + 1)
                    for f in (reference, current)]
        assert metrics["psi"] == pytest.approx(st.psi(st.shares(expected[0]), st.shares(expected[1])), abs=1e-12)


def test_prediction_buckets_of_ten_usd_stay_within_the_documented_error(spark, frames):
    current, reference = frames
    specs = ev.column_specs(REFERENCE)
    metrics = ev.drift_by_column(specs, spark_counts(spark, current, reference, specs))["prediction"].metrics
    exact_ks = ks_2samp(reference["predicted_annual_charges"], current["predicted_annual_charges"], method="asymp")
    exact_w = wasserstein_distance(reference["predicted_annual_charges"], current["predicted_annual_charges"])
    assert abs(metrics["ks_statistic"] - exact_ks.statistic) < 1e-3
    std = REFERENCE["prediction"]["std"]
    assert abs(metrics["wasserstein_norm"] - exact_w / std) < 5.0 / std


@hypothesis_settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=s.integers(0, 10_000), partitions=s.integers(2, 9))
def test_results_do_not_depend_on_row_order_or_partitions(spark, frames, seed, partitions):
    current, reference = frames
    specs = ev.column_specs(REFERENCE)
    once = ev.evaluate_drift(specs, spark_counts(spark, current, reference, specs, partitions=1), THRESHOLDS)
    shuffled = current.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    again = ev.evaluate_drift(specs, spark_counts(spark, shuffled, reference, specs, partitions=partitions),
                              THRESHOLDS)
    assert once[0] == again[0]
    assert [(v.type, v.column_name, v.value) for v in once[1]] == [(v.type, v.column_name, v.value) for v in again[1]]


def test_performance_sums_in_spark_match_pandas(spark):
    from healthcare_mlops.modeling import metrics as m
    from healthcare_mlops.modeling.risk import reference_quantiles
    from healthcare_mlops.monitoring.drift import performance_sums

    rng = np.random.default_rng(4)
    frame = population(3000, 4)
    actual = frame["predicted_annual_charges"] * rng.lognormal(0.0, 0.3, len(frame))
    prediction_reference = reference_quantiles(frame["predicted_annual_charges"] * 0.95)
    actual_reference = reference_quantiles(actual * 1.05)
    predictions = frame.assign(patient_natural_key=[f"K{i}" for i in range(len(frame))],
                               risk_category=np.where(rng.random(len(frame)) < 0.05, "critical", "low"))
    labels = pd.DataFrame({"patient_natural_key": predictions["patient_natural_key"], "annual_charges": actual})
    labels.loc[:99, "annual_charges"] = np.nan                  # not labelled yet: left out
    sums = performance_sums(spark.createDataFrame(predictions), spark.createDataFrame(labels),
                            prediction_reference, actual_reference)
    rows, fairness, _ = perf.evaluate_performance(sums, THRESHOLDS, {})
    values = {r["metric"]: r["value"] for r in rows if r["column_name"] == ev.PREDICTION}
    kept = labels["annual_charges"].notna()
    a, p = actual[kept], frame["predicted_annual_charges"][kept]
    assert values["mae"] == pytest.approx(m.mae(a, p), rel=1e-9)
    assert values["r2"] == pytest.approx(m.r2(a, p), rel=1e-9)
    assert values["risk_score_mae"] == pytest.approx(m.risk_score_mae(a, p, prediction_reference, actual_reference),
                                                     rel=1e-9)
    male = next(f for f in fairness if f["group_column"] == "sex" and f["group_value"] == "male")
    is_male = predictions["sex"][kept] == "male"
    assert male["n"] == int(is_male.sum())
    assert male["mae"] == pytest.approx(m.mae(a[is_male], p[is_male]), rel=1e-9)
    assert male["critical_share"] == pytest.approx((predictions["risk_category"][kept][is_male] == "critical").mean())


# -- alerts: ids, acknowledgement, the CLI --------------------------------------------------
def write_alerts(settings, verdicts, window=(DAY2, DAY2), previous=None):
    import pyarrow as pa

    rows = al.alert_rows(settings.tables, verdicts, "run-1", window[0], window[1],
                         dt.datetime(2026, 1, 2, 6, tzinfo=dt.timezone.utc), previous)
    DeltaCatalog(settings).write(pa.Table.from_pylist(rows, schema=al.alert_arrow_schema()),
                                          ML_MODEL_ALERTS, mode="replace_partition",
                                          partition={"window_start": window[0], "window_end": window[1]},
                                          partition_by=["window_start", "window_end"])
    return rows


def audited(settings):
    """The audit writer the CLI and the console hand ``acknowledge``."""
    return audit_log(settings).record_action


VERDICTS = [ev.Verdict("composite_drift", "critical", "", 0.61, 0.3, "smoker drifted", {"psi": {"smoker": 0.11}}),
            ev.Verdict("demographic_shift", "warning", "region", 0.15, 0.1, "northeast +15 pp", {})]


def test_alert_ids_are_stable_per_window_type_and_column(settings):
    first = al.alert_id(settings.tables, DAY2, DAY2, "composite_drift", "")
    assert first == al.alert_id(settings.tables, DAY2, DAY2, "composite_drift", "")
    assert first != al.alert_id(settings.tables, DAY1, DAY2, "composite_drift", "")
    assert first != al.alert_id(settings.tables, DAY2, DAY2, "prediction_drift", "")
    assert al.normalise_alert_id(first.upper()) == first
    with pytest.raises(UserError, match="not an alert id"):
        al.normalise_alert_id("1 OR 1=1")


def test_acknowledge_records_who_and_when_once(settings):
    rows = write_alerts(settings, VERDICTS)
    target, alerts, record = rows[0]["alert_id"], DeltaCatalog(settings), audited(settings)
    with pytest.raises(UserError, match="operator role"):
        al.acknowledge(alerts, target, Identity("viewer@example.com", "viewer"), record)
    with pytest.raises(UserError, match="no alert"):
        al.acknowledge(alerts, "00000000-0000-0000-0000-000000000000", OPERATOR, record)
    acknowledged = al.acknowledge(alerts, target, OPERATOR, record, comment="retrain is running")
    assert acknowledged["acknowledged_by"] == "ops@example.com"
    assert acknowledged["acknowledged_comment"] == "retrain is running"
    assert pd.notna(acknowledged["acknowledged_at"])
    with pytest.raises(UserError, match="already acknowledged by ops@example.com"):
        al.acknowledge(alerts, target, Identity("other@example.com", "approver"), record)
    # the audit writer handed in got one row: the acknowledgement, not the refusals
    events = audit_log(settings).history()
    acks = events[events["action"] == ACKNOWLEDGED]
    assert list(acks["actor"]) == ["ops@example.com"] and target in acks.iloc[0]["comment"]
    open_alerts = al.list_alerts(alerts)
    assert list(open_alerts["alert_id"]) == [rows[1]["alert_id"]]
    assert len(al.list_alerts(alerts, include_acknowledged=True)) == 2
    # readers can still filter on text columns after the update (no string_view files)
    from healthcare_mlops.runtime.sql_engine import sql_engine

    found = sql_engine(settings).query("SELECT type FROM ml_model_alerts WHERE alert_id = :id", {"id": target})
    assert list(found["type"]) == ["composite_drift"]


def test_a_rerun_keeps_the_acknowledgement_and_the_retrain_link(settings):
    rows = write_alerts(settings, VERDICTS)
    al.acknowledge(DeltaCatalog(settings), rows[1]["alert_id"], OPERATOR, audited(settings))
    al.record_retrain(DeltaCatalog(settings), [rows[0]["alert_id"]], "12345")
    previous = DeltaCatalog(settings).read_arrow(ML_MODEL_ALERTS).to_pandas()
    again = al.alert_rows(settings.tables, VERDICTS, "run-2", DAY2, DAY2, dt.datetime.now(dt.timezone.utc), previous)
    by_id = {row["alert_id"]: row for row in again}
    assert by_id[rows[0]["alert_id"]]["retrain_run_id"] == "12345"
    assert by_id[rows[1]["alert_id"]]["acknowledged_by"] == "ops@example.com"
    assert by_id[rows[0]["alert_id"]]["created_at"] == rows[0]["created_at"]
    assert all(row["run_id"] == "run-2" for row in again)

    # A rerun that no longer raises the acknowledged alert keeps it, acknowledgement and all.
    fewer = [v for v in VERDICTS
             if al.alert_id(settings.tables, DAY2, DAY2, v.type, v.column_name) != rows[1]["alert_id"]]
    third = al.alert_rows(settings.tables, fewer, "run-3", DAY2, DAY2, dt.datetime.now(dt.timezone.utc), previous)
    kept = {row["alert_id"]: row for row in third}[rows[1]["alert_id"]]
    assert kept["acknowledged_by"] == "ops@example.com" and kept["run_id"] == rows[1]["run_id"]
    assert len(third) == len(VERDICTS)


def test_alerts_cli_lists_and_acknowledges(settings, monkeypatch):
    from healthcare_mlops.cli.main import app

    runner = CliRunner()
    empty = runner.invoke(app, ["--home", str(settings.home), "alerts", "list"])
    assert empty.exit_code == 0 and "no unacknowledged alerts" in empty.output
    rows = write_alerts(settings, VERDICTS)
    listed = runner.invoke(app, ["--home", str(settings.home), "alerts", "list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert [a["type"] for a in json.loads(listed.output)] == ["composite_drift", "demographic_shift"]
    monkeypatch.setenv("HEALTHCARE_MLOPS_USER", "cli@example.com")
    monkeypatch.setenv("HEALTHCARE_MLOPS_ROLE", "operator")
    acked = runner.invoke(app, ["--home", str(settings.home), "alerts", "ack", rows[0]["alert_id"],
                                "--comment", "seen", "--format", "json"])
    assert acked.exit_code == 0, acked.output
    assert json.loads(acked.output)["acknowledged_by"] == "cli@example.com"
    everything = runner.invoke(app, ["--home", str(settings.home), "alerts", "list", "--all", "--format", "json"])
    assert {a["acknowledged_by"] for a in json.loads(everything.output)} == {"cli@example.com", None}
    monkeypatch.setenv("HEALTHCARE_MLOPS_ROLE", "viewer")
    refused = runner.invoke(app, ["--home", str(settings.home), "alerts", "ack", rows[1]["alert_id"]])
    assert refused.exit_code != 0 and "operator role" in str(refused.exception)


def test_alerts_list_fits_100_columns_and_keeps_the_whole_message(settings):
    from healthcare_mlops.cli.main import app

    message = "composite drift 0.61 > 0.3: " + ", ".join(f"input_{i} moved by PSI 0.{i}2" for i in range(12))
    rows = write_alerts(settings, [ev.Verdict("composite_drift", "critical", "", 0.61, 0.3, message, {}),
                                   *VERDICTS[1:]])
    al.record_retrain(DeltaCatalog(settings), [rows[0]["alert_id"]], "1796224086223374")
    listed = CliRunner().invoke(app, ["--home", str(settings.home), "alerts", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert max(len(line) for line in lines) <= 100, listed.output
    assert " ".join(line.strip() for line in lines).count(message) == 1          # wrapped, never cut
    assert all(row["alert_id"] in listed.output for row in rows)
    assert "started retrain run 1796224086223374" in listed.output


# -- retraining --------------------------------------------------------------------------------
class RecordingJobs:
    """The only fake: a workspace client that records ``jobs.run_now`` requests."""

    def __init__(self):
        self.calls = []

    def run_now(self, **kwargs):
        self.calls.append(kwargs)
        return SimpleNamespace(response=SimpleNamespace(run_id=9001 + len(self.calls)), run_id=None)


def test_databricks_retrain_request(settings):
    from healthcare_mlops.composition import launcher

    workspace = resolve_settings("prod")
    client = SimpleNamespace(jobs=RecordingJobs())
    jobs = launcher(workspace, client_factory=lambda: client)
    run = retrain.trigger_retrain(workspace.tables, jobs, "123456", DAY2, DAY2, ["b", "a"], latest_load=DAY2)
    assert run.run_id == "9002" and run.where == "databricks" and run.status == "QUEUED"
    call = client.jobs.calls[0]
    assert call["job_id"] == 123456
    assert call["job_parameters"] == {"as_of": "2026-01-02", "scoring_date": "2026-01-02"}
    # no load known: the job's default
    assert retrain.retrain_parameters(DAY2, None) == {"scoring_date": "2026-01-02"}
    assert call["idempotency_token"] == retrain.idempotency_token(workspace.tables, DAY2, DAY2, ["a", "b"])
    assert len(call["idempotency_token"]) <= 64
    assert retrain.trigger_retrain(workspace.tables, jobs, "", DAY2, DAY2, ["a"]) is None
    with pytest.raises(UserError, match="numeric id"):
        retrain.trigger_retrain(workspace.tables, jobs, "ml_training_pipeline", DAY2, DAY2, ["a"])


@pytest.mark.slow
def test_local_retrain_runs_the_job_through_the_runner(settings):
    from healthcare_mlops.bundle.definition import load_bundle
    from healthcare_mlops.emulator.run_history import read_runs
    from healthcare_mlops.composition import launcher

    jobs = launcher(settings, load_bundle(FIXTURE_BUNDLE))
    run = retrain.trigger_retrain(settings.tables, jobs, "retrain", DAY2, DAY2, ["a"], echo=False)
    assert run.where == "local" and run.status == "SUCCEEDED"
    history = read_runs(settings, job_key="retrain")
    job = history[history["parent_run_id"].isna()].iloc[0]
    assert str(job["run_id"]) == run.run_id and job["trigger"] == "monitoring"
    with pytest.raises(UserError, match="no job 'nope' in the bundle"):
        retrain.trigger_retrain(settings.tables, jobs, "nope", DAY2, DAY2, ["a"])


# -- the job ------------------------------------------------------------------------------------
def table(settings, name: str) -> pd.DataFrame:
    return DeltaCatalog(settings).read_arrow(name).to_pandas()


def test_monitoring_without_predictions_says_what_to_run(copy_home):
    from healthcare_mlops.tasks import model_monitoring

    settings = resolve_settings("local", copy_home)
    with pytest.raises(UserError, match="run batch_inference first"):
        model_monitoring.run(build_runtime(settings), "monitor")


def test_setup_checks_the_references_and_creates_the_tables(copy_home, spark):
    from healthcare_mlops.tasks import model_monitoring

    settings = resolve_settings("local", copy_home)
    result = model_monitoring.run(build_runtime(settings), "setup")
    assert result["references"] == {"champion": "1", "challenger": "1"}
    assert set(result["created"]) == {ML_DRIFT_METRICS, ML_FAIRNESS_METRICS, ML_MODEL_ALERTS}
    assert result["scoring_dates"] == 0
    assert model_monitoring.run(build_runtime(settings), "setup")["created"] == []
    for name in (ML_DRIFT_METRICS, ML_FAIRNESS_METRICS, ML_MODEL_ALERTS):
        assert table(settings, name).empty
    with pytest.raises(UserError, match="--mode"):
        model_monitoring.run(build_runtime(settings), "sideways")


def test_window_resolution():
    from healthcare_mlops.tasks.model_monitoring import resolve_window

    days = [DAY1, DAY2]
    assert resolve_window(days) == (DAY2, DAY2)
    assert resolve_window(days, "2026-01-01") == (DAY1, DAY1)
    assert resolve_window(days, "2026-01-01", "2026-01-02") == (DAY1, DAY2)
    assert resolve_window(days, None, "2026-01-01") == (DAY1, DAY1)
    with pytest.raises(UserError, match="after"):
        resolve_window(days, "2026-01-02", "2026-01-01")
    with pytest.raises(UserError, match="no predictions scored between"):
        resolve_window(days, "2026-02-01")
    with pytest.raises(UserError, match="YYYY-MM-DD"):
        resolve_window(days, "yesterday")
    with pytest.raises(UserError, match="run batch_inference first"):
        resolve_window([])


@pytest.fixture(scope="module")
def scored_day1(pipeline_home, tmp_path_factory, spark):
    """The pipeline lakehouse with day 1 scored by the real batch_inference task (read-only)."""
    from healthcare_mlops.tasks import batch_inference

    root = tmp_path_factory.mktemp("scored") / "lakehouse"
    shutil.copytree(pipeline_home, root)
    batch_inference.run(build_runtime(resolve_settings("local", root)), DAY1.isoformat(), batch_inference.PRODUCTION)
    return root


def test_first_day_has_no_alerts_and_a_rerun_replaces_its_window(scored_day1, tmp_path, spark):
    from healthcare_mlops.tasks import model_monitoring

    root = tmp_path / "lakehouse"
    shutil.copytree(scored_day1, root)
    settings = resolve_settings("local", root)
    first = model_monitoring.run(build_runtime(settings), "monitor", retrain_job_id="", run_id="first")
    assert first["window_start"] == first["window_end"] == DAY1.isoformat()
    assert first["alerts"] == [] and first["volume"] == 20000
    assert first["performance_batch"] == {}                   # no later charges yet
    drift = table(settings, ML_DRIFT_METRICS)
    psi = drift[drift["metric"] == "psi"].set_index("column_name")["value"]
    assert set(psi.index) == {"age", "bmi", "children", "smoker", "region", "prediction"}
    assert (psi < 0.1).all()
    second = model_monitoring.run(build_runtime(settings), "monitor", window_start=DAY1.isoformat(),
                                  window_end=DAY1.isoformat(), retrain_job_id="", run_id="second")
    again = table(settings, ML_DRIFT_METRICS)
    assert len(again) == len(drift) and set(again["run_id"]) == {"second"}
    assert second["drift_metrics"] == len(again)


def _estimate_rows(settings) -> pd.DataFrame:
    drift = table(settings, ML_DRIFT_METRICS)
    return drift[drift["metric"].str.startswith("estimated_")].set_index("metric")


def test_the_window_gets_an_estimate_and_a_version_without_an_estimator_says_why(scored_day1, tmp_path):
    """Version 1 was trained with its performance estimator: the window's estimated MAE and
    risk-score MAE are written with their intervals. A version whose run has none (trained
    before training logged it) gives ``unavailable`` rows with the reason; the run still succeeds."""
    from healthcare_mlops.monitoring.performance_estimate import UNAVAILABLE
    from healthcare_mlops.tasks import model_monitoring

    root = tmp_path / "lakehouse"
    shutil.copytree(scored_day1, root)
    settings = resolve_settings("local", root)
    runtime = build_runtime(settings)
    model_monitoring.run(runtime, "monitor", retrain_job_id="", run_id="with")
    rows = _estimate_rows(settings)
    for metric in ("estimated_mae", "estimated_risk_score_mae"):
        value, lower, upper = (rows.loc[name, "value"] for name in (metric, f"{metric}_lower", f"{metric}_upper"))
        assert 0 < lower <= value <= upper and rows.loc[metric, "status"] != UNAVAILABLE, rows
        assert rows.loc[f"{metric}_n", "value"] == 20000
    registry = runtime.registry
    first = registry.version("1")
    bare = registry.client.create_run(registry.client.get_run(first.run_id).info.experiment_id).info.run_id
    registry.client.create_model_version(registry.model_name, first.source, run_id=bare)     # version 2: no estimator
    assert DeltaCatalog(settings).update(ML_PATIENT_PREDICTIONS, {"model_version": "2"}, []) == 20000
    model_monitoring.run(build_runtime(settings), "monitor", retrain_job_id="", run_id="without")
    rows = _estimate_rows(settings)
    assert set(rows.index) == {"estimated_mae", "estimated_risk_score_mae"}
    assert (rows["status"] == UNAVAILABLE).all() and rows["value"].isna().all()
    assert rows["group_value"].str.contains("version 2 has no performance estimator").all(), rows["group_value"]


def test_a_killed_run_is_repaired_by_the_rerun(scored_day1, tmp_path):

    from healthcare_mlops.failpoints import FAILPOINT_ENV, KILLED_EXIT_CODE

    root = tmp_path / "lakehouse"
    shutil.copytree(scored_day1, root)
    entry = Path(__file__).resolve().parents[1] / "jobs" / "model_monitoring.py"

    def command(run_id: str) -> list[str]:
        thresholds = [item for name, value in (vars(THRESHOLDS) | vars(TRAFFIC)).items()
                      for item in (f"--{name}", str(value))]
        return [sys.executable, str(entry), "--target", "local", "--catalog", "hc_local", "--schema", "insurance",
                "--mode", "monitor", "--run_id", run_id, *thresholds]

    env = {**os.environ, "HEALTHCARE_MLOPS_HOME": str(root), FAILPOINT_ENV: "monitoring:after_drift"}
    killed = subprocess.run(command("killed"), env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == KILLED_EXIT_CODE, killed.stderr
    settings = resolve_settings("local", root)
    assert set(table(settings, ML_DRIFT_METRICS)["run_id"]) == {"killed"}
    assert not DeltaCatalog(settings).exists(ML_MODEL_ALERTS)
    env.pop(FAILPOINT_ENV)
    # the kill needs a process of its own; the repair does not: the rerun's job file runs in this process
    status, _code, error = run_task_in_this_process("rerun", entry, command("rerun")[2:], Path.cwd(), env,
                                                    None, False, 600)
    assert status == SUCCEEDED, error
    assert set(table(settings, ML_DRIFT_METRICS)["run_id"]) == {"rerun"}
    assert set(table(settings, ML_FAIRNESS_METRICS)["run_id"]) <= {"rerun"}
    assert DeltaCatalog(settings).exists(ML_MODEL_ALERTS)


# -- scenarios, end to end ----------------------------------------------------------------------
# (type, severity, column or None for any column) that each scenario must raise, and the
# types it must not raise. baseline raises nothing at all.
EXPECTED = {
    "baseline": set(),
    "smoker_surge": {("composite_drift", "critical", ""), ("demographic_shift", "warning", "smoker")},
    "aging": {("demographic_shift", "warning", "age_band"), ("prediction_drift", "critical", "prediction")},
    "region_shift": {("demographic_shift", "warning", "region")},
    "bmi_drift": {("composite_drift", "warning", "")},
    "cost_inflation": {("performance", "critical", "prediction")},
    "low_volume": {("low_volume", "warning", "")},
}
FORBIDDEN = {
    "baseline": set(ALERT_TYPES),
    "smoker_surge": {"low_volume"},
    "aging": {"low_volume", "performance"},
    "region_shift": {"low_volume", "performance", "prediction_drift", "fairness"},
    "bmi_drift": {"low_volume", "demographic_shift", "prediction_drift", "performance"},
    "cost_inflation": {"composite_drift", "prediction_drift", "demographic_shift", "low_volume"},
    "low_volume": {"composite_drift", "prediction_drift", "demographic_shift", "performance", "fairness"},
}
THROUGH_RUNNER = ("baseline",)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_scenario_raises_the_alerts_it_should(scenario, scored_day1, tmp_path, monkeypatch, spark):
    from healthcare_mlops.emulator.runner import run_job
    from healthcare_mlops.tasks.load_members import generate_patients
    from healthcare_mlops.tasks import batch_inference, feature_engineering, model_monitoring

    root = tmp_path / "lakehouse"
    shutil.copytree(scored_day1, root)
    monkeypatch.setenv("HEALTHCARE_MLOPS_HOME", str(root))
    settings = resolve_settings("local", root)
    generate_patients(cli_runtime(settings), 2000, 42, DAY2, scenario)      # data generate --patients 2000 --scenario X
    if scenario in THROUGH_RUNNER:
        tasks_in_this_process(monkeypatch)
        for job_key, params in (("feature_engineering", {"as_of": DAY2.isoformat()}),
                                ("batch_inference", {"scoring_date": DAY2.isoformat()}),
                                ("model_monitoring", {"window_start": DAY2.isoformat()})):
            run_job(job_key, params, home=root, echo=False).raise_for_status()
    else:
        feature_engineering.run(build_runtime(settings), DAY2)
        batch_inference.run(build_runtime(settings), DAY2.isoformat(), batch_inference.PRODUCTION)
        model_monitoring.run(build_runtime(settings), "monitor", retrain_job_id="")
    alerts = table(settings, ML_MODEL_ALERTS)
    raised = {(a.type, a.severity, a.column_name) for a in alerts.itertuples()}
    assert EXPECTED[scenario] <= raised, raised
    assert not {a[0] for a in raised} & FORBIDDEN[scenario], raised
    assert set(alerts["window_start"]) <= {DAY2} and set(alerts["severity"]) <= set(SEVERITIES)
    assert alerts["retrain_run_id"].isna().all()                   # no retrain asked for here
    drift = table(settings, ML_DRIFT_METRICS)
    assert set(drift["window_start"]) == {DAY2}
    performance = table(settings, ML_FAIRNESS_METRICS)
    overall = performance[performance["group_column"] == "all"]
    assert set(overall["scoring_date"]) == {DAY1} and set(overall["label_date"]) == {DAY2}
    # each group's stored relative calibration (what the Fairness page draws) is the number the check judged
    worst = drift[drift["metric"] == "calibration_ratio_worst"]
    stored = performance.set_index(["group_column", "group_value"])["relative_calibration"]
    assert all(stored[(w.column_name, w.group_value)] == w.value for w in worst.itertuples())
    assert len(worst) or scenario == "low_volume"
    if scenario in THROUGH_RUNNER:
        assert drift["run_id"].str.isdigit().all()                  # {{job.run_id}} of the runner


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("HEALTHCARE_MLOPS_RETRAIN_E2E"),
                    reason="runs the whole training pipeline (minutes); set HEALTHCARE_MLOPS_RETRAIN_E2E=1")
def test_a_critical_alert_retrains_through_the_runner(scored_day1, tmp_path, monkeypatch, spark):
    from healthcare_mlops.emulator.run_history import read_runs
    from healthcare_mlops.emulator.runner import run_job
    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
    from healthcare_mlops.tasks.load_members import generate_patients
    from healthcare_mlops.tasks import batch_inference, feature_engineering

    root = tmp_path / "lakehouse"
    shutil.copytree(scored_day1, root)
    monkeypatch.setenv("HEALTHCARE_MLOPS_HOME", str(root))
    settings = resolve_settings("local", root)
    generate_patients(cli_runtime(settings), 2000, 42, DAY2, "smoker_surge")
    feature_engineering.run(build_runtime(settings), DAY2)
    batch_inference.run(build_runtime(settings), DAY2.isoformat(), batch_inference.PRODUCTION)
    run_job("model_monitoring", {}, home=root, echo=False).raise_for_status()
    alerts = table(settings, ML_MODEL_ALERTS)
    critical = alerts[alerts["severity"] == "critical"]
    assert len(critical) >= 1 and critical["retrain_run_id"].notna().all()
    retrain_id = critical["retrain_run_id"].iloc[0]
    pipeline = read_runs(settings, job_key="ml_training_pipeline")
    job = pipeline[pipeline["parent_run_id"].isna()].iloc[0]
    assert str(job["run_id"]) == retrain_id and job["trigger"] == "monitoring" and job["status"] == "SUCCEEDED"
    client = configure_mlflow(settings)
    assert client.get_model_version_by_alias(settings.model_name, "challenger").version == "2"
