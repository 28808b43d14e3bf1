"""Batch inference: business rules at their boundaries, the job's storage, quarantine, privacy, kills."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from healthcare_mlops.composition import build_runtime
from healthcare_mlops.errors import UserError
from healthcare_mlops.failpoints import FAILPOINT_ENV, KILLED_EXIT_CODE
from healthcare_mlops.features.training_range import TrainingRange, outside_range_reason
from healthcare_mlops.modeling.risk import risk_category
from healthcare_mlops.privacy import IDENTIFIER_COLUMN_PATTERNS, MEMBER_KEY, member_keys, personal_data
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.runtime.model_loading import load_scoring_model
from healthcare_mlops.scoring.contract import PREDICTION_COLUMNS, PREDICTION_SCHEMA_DDL, REASON_SEPARATOR
from healthcare_mlops.scoring.rules import (BELOW_MINIMUM, CRITICAL_RISK, LOW_CONFIDENCE, BusinessRules,
                                            ScoringThresholds, apply_rules, join_reasons)
from healthcare_mlops.parameters import scoring_thresholds
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tables import (DATA_QUALITY_QUARANTINE, EXPLANATION_COLUMNS, ML_INSURANCE_FEATURES,
                                     ML_PATIENT_PREDICTIONS, ML_PATIENT_PREDICTIONS_VALIDATION, SILVER_PATIENTS,
                                     TOP_REASONS_COLUMN)
from healthcare_mlops.tasks import batch_inference

REPO = Path(__file__).resolve().parents[1]
DAY1, DAY2 = dt.date(2026, 1, 2), dt.date(2026, 1, 3)
REFERENCE = {"numeric": {"age": {"min": 18.0, "max": 64.0}, "bmi": {"min": 16.0, "max": 53.0},
                         "children": {"min": 0.0, "max": 5.0}},
             "categorical": {"smoker": {"false": 0.8, "true": 0.2},
                             "region": {"northeast": 0.25, "northwest": 0.25, "southeast": 0.25,
                                        "southwest": 0.25},
                             "sex": {"female": 0.5, "male": 0.5}}}
RULES = BusinessRules(ScoringThresholds(min_predicted_charges=1000.0, review_interval_width_ratio=1.5),
                      training_range=TrainingRange.from_reference(REFERENCE))
TYPICAL = {"age": 40, "bmi": 30.0, "children": 1, "smoker": False, "region": "northeast"}


# ----------------------------------------------------------------------------- rules (pure)

def _apply(rows: list[dict], rules: BusinessRules = RULES) -> pd.DataFrame:
    """Rules on model outputs; each row gives the output and (optionally) input overrides."""
    scored = pd.DataFrame([{"predicted_annual_charges": r.get("pred", 10_000.0),
                            "risk_score": r.get("score", 50.0),
                            "risk_category": risk_category([r.get("score", 50.0)])[0],
                            "interval_lower": r.get("lower", 8_000.0), "interval_upper": r.get("upper", 12_000.0)}
                           for r in rows])
    inputs = pd.DataFrame([{**TYPICAL, **r.get("inputs", {})} for r in rows])
    return apply_rules(scored, inputs, rules)


def test_a_typical_member_needs_no_review():
    out = _apply([{}]).iloc[0]
    assert out["review_reasons"] == "" and not out["requires_review"] and not out["high_risk"]
    assert out["predicted_annual_charges"] == 10_000.0


@pytest.mark.parametrize("pred, floored, flagged", [(999.99, 1000.0, True), (1000.0, 1000.0, False),
                                                    (1000.01, 1000.01, False), (0.0, 1000.0, True)])
def test_the_floor_raises_predictions_below_it_and_flags_them(pred, floored, flagged):
    out = _apply([{"pred": pred, "lower": 0.0, "upper": pred + 2000.0}]).iloc[0]
    assert out["predicted_annual_charges"] == floored
    assert (BELOW_MINIMUM in out["review_reasons"].split(REASON_SEPARATOR)) is flagged
    assert out["interval_lower"] <= out["predicted_annual_charges"] <= out["interval_upper"]


def test_a_floored_prediction_keeps_its_interval_around_it():
    out = _apply([{"pred": 400.0, "lower": 100.0, "upper": 700.0}]).iloc[0]
    assert (out["interval_lower"], out["predicted_annual_charges"], out["interval_upper"]) == (100.0, 1000.0, 1000.0)


@pytest.mark.parametrize("upper, flagged", [(4000.0, False), (4000.001, True), (3999.0, False)])
def test_low_confidence_is_strictly_above_the_width_ratio(upper, flagged):
    # predicted 2000, lower 1000: (upper - lower) / predicted is exactly 1.5 at upper 4000
    out = _apply([{"pred": 2000.0, "lower": 1000.0, "upper": upper}]).iloc[0]
    assert (out["review_reasons"] == LOW_CONFIDENCE) is flagged
    assert bool(out["requires_review"]) is flagged


def test_low_confidence_is_judged_on_the_floored_prediction():
    # raw 500 with interval 0-1600: raw ratio 3.2; floored to 1000 -> 1.6 > 1.5
    out = _apply([{"pred": 500.0, "lower": 0.0, "upper": 1600.0}]).iloc[0]
    assert out["review_reasons"] == REASON_SEPARATOR.join([BELOW_MINIMUM, LOW_CONFIDENCE])
    out = _apply([{"pred": 500.0, "lower": 0.0, "upper": 1500.0}]).iloc[0]
    assert out["review_reasons"] == BELOW_MINIMUM


@pytest.mark.parametrize("score, critical", [(94.999, False), (95.0, True), (100.0, True), (80.0, False)])
def test_critical_members_are_high_risk_and_flagged(score, critical):
    out = _apply([{"score": score}]).iloc[0]
    assert bool(out["high_risk"]) is critical
    assert (out["review_reasons"] == CRITICAL_RISK) is critical


@pytest.mark.parametrize("column, value, flagged", [
    ("age", 18, False), ("age", 64, False), ("age", 17, True), ("age", 65, True),
    ("bmi", 16.0, False), ("bmi", 53.0, False), ("bmi", 15.99, True), ("bmi", 53.01, True),
    ("children", 0, False), ("children", 5, False), ("children", 6, True),
])
def test_training_range_edges_are_inside(column, value, flagged):
    out = _apply([{"inputs": {column: value}}]).iloc[0]
    assert (out["review_reasons"] == outside_range_reason(column)) is flagged


def test_unseen_categories_are_outside_the_training_range():
    reference = {**REFERENCE, "categorical": {"smoker": {"false": 1.0}, "region": {"northeast": 1.0}}}
    rules = BusinessRules(RULES.thresholds, training_range=TrainingRange.from_reference(reference))
    out = _apply([{"inputs": {"smoker": True}}, {"inputs": {"region": "southwest"}},
                  {"inputs": {"region": "NorthEast"}}, {}], rules)
    assert list(out["review_reasons"]) == ["outside_training_range:smoker", "outside_training_range:region", "", ""]


def test_reasons_are_joined_in_a_fixed_order():
    out = _apply([{"pred": 900.0, "score": 99.0, "lower": 0.0, "upper": 5000.0,
                   "inputs": {"age": 80, "bmi": 60.0}}]).iloc[0]
    assert out["review_reasons"].split(REASON_SEPARATOR) == [
        BELOW_MINIMUM, CRITICAL_RISK, LOW_CONFIDENCE, "outside_training_range:age", "outside_training_range:bmi"]
    assert out["requires_review"] and out["high_risk"]
    masks = [("a", np.array([True, False, True])), ("b", np.array([True, True, False]))]
    assert list(join_reasons(masks, 3)) == ["a;b", "b", "a"]
    assert list(join_reasons([], 2)) == ["", ""]


def test_thresholds_come_from_the_bundle_variables():
    defaults = scoring_thresholds(resolve_settings("local").variables)
    assert defaults == ScoringThresholds(1000.0, 2.0)
    as_task_params = scoring_thresholds({"min_predicted_charges": "250", "review_interval_width_ratio": "1.5"})
    assert as_task_params == ScoringThresholds(250.0, 1.5)
    with pytest.raises(UserError, match="'min_predicted_charges' must be a number, not 'lots'"):
        scoring_thresholds({"min_predicted_charges": "lots", "review_interval_width_ratio": "2"})
    with pytest.raises(UserError, match="'review_interval_width_ratio' must be >= 0"):
        scoring_thresholds({"min_predicted_charges": "250", "review_interval_width_ratio": "-1"})
    with pytest.raises(UserError, match="scoring threshold 'min_predicted_charges' is not set"):
        scoring_thresholds({"review_interval_width_ratio": "2"})


# ----------------------------------------------------------------------------- the job

def _settings(home) -> object:
    return resolve_settings("local", home)


def _table(settings, name: str) -> pd.DataFrame:
    return DeltaCatalog(settings).read_arrow(name).to_pandas()


def _partition(settings, name: str, day: dt.date) -> pd.DataFrame:
    frame = _table(settings, name)
    return frame[frame["scoring_date"] == day].sort_values("patient_natural_key").reset_index(drop=True)


def _features(settings) -> pd.DataFrame:
    return _table(settings, ML_INSURANCE_FEATURES)


def test_scoring_writes_the_contract_reruns_idempotently_and_replaces_only_its_date(spark, copy_home):
    settings = _settings(copy_home)
    first = batch_inference.run(build_runtime(settings), DAY1.isoformat())
    n_features = len(_features(settings))
    assert first["features"] == n_features == first["predictions"] + first["quarantined"]
    assert (first["quarantined"], first["features_as_of"]) == (0, "2026-01-01")

    day1 = _partition(settings, ML_PATIENT_PREDICTIONS, DAY1)
    assert tuple(day1.columns) == PREDICTION_COLUMNS
    arrow = DeltaCatalog(settings).read_arrow(ML_PATIENT_PREDICTIONS).schema
    types = dict(part.split() for part in PREDICTION_SCHEMA_DDL.split(", "))
    kinds = {"STRING": "string", "DATE": "date32[day]", "DOUBLE": "double", "BOOLEAN": "bool", "INT": "int32",
             "TIMESTAMP": "timestamp[us, tz=UTC]"}
    assert {f.name: str(f.type) for f in arrow} == {name: kinds[kind] for name, kind in types.items()}
    assert day1["patient_natural_key"].is_unique and len(day1) == n_features
    explained = [*EXPLANATION_COLUMNS, TOP_REASONS_COLUMN]          # only members flagged for review are explained
    assert day1.drop(columns=explained).notna().all().all()
    assert (day1[explained].notna().all(axis=1) == day1["requires_review"]).all()
    assert (day1[explained].isna().all(axis=1) == ~day1["requires_review"]).all()
    assert (day1["interval_lower"] <= day1["predicted_annual_charges"]).all()
    assert (day1["predicted_annual_charges"] <= day1["interval_upper"]).all()
    assert (day1["predicted_annual_charges"] >= 1000.0).all()
    assert (day1["high_risk"] == (day1["risk_category"] == "critical")).all()
    assert (day1["requires_review"] == (day1["review_reasons"] != "")).all()
    critical = day1[day1["high_risk"]]
    assert critical["review_reasons"].str.contains(CRITICAL_RISK).all()
    assert 0.02 < len(critical) / len(day1) < 0.10
    assert set(day1["model_version"]) == {"1"} and set(day1["model_name"]) == {settings.model_name}
    assert day1["model_run_id"].str.fullmatch(r"[0-9a-f]{32}").all()
    assert day1["scored_at"].nunique() == 1

    batch_inference.run(build_runtime(settings), DAY2.isoformat())
    day2 = _partition(settings, ML_PATIENT_PREDICTIONS, DAY2)
    version = DeltaCatalog(settings).version(ML_PATIENT_PREDICTIONS)

    again = batch_inference.run(build_runtime(settings), DAY1)                     # rerun day 1
    assert again["predictions"] == first["predictions"]
    assert DeltaCatalog(settings).version(ML_PATIENT_PREDICTIONS) == version + 1
    rerun = _partition(settings, ML_PATIENT_PREDICTIONS, DAY1)
    pd.testing.assert_frame_equal(rerun.drop(columns=["scored_at"]), day1.drop(columns=["scored_at"]))
    assert rerun["scored_at"].iloc[0] > day1["scored_at"].iloc[0]
    pd.testing.assert_frame_equal(_partition(settings, ML_PATIENT_PREDICTIONS, DAY2), day2)   # untouched
    assert len(_table(settings, ML_PATIENT_PREDICTIONS)) == 2 * n_features


def test_no_personal_data_in_the_predictions(spark, copy_home):
    settings = _settings(copy_home)
    batch_inference.run(build_runtime(settings), DAY1)
    predictions = _table(settings, ML_PATIENT_PREDICTIONS)
    identifiers = [c for c in predictions.columns if any(p.search(c.lower()) for p in IDENTIFIER_COLUMN_PATTERNS)]
    assert identifiers == ["model_name"]             # the registered model's name, not a person's
    silver = _table(settings, SILVER_PATIENTS)
    personal = set().union(*(set(silver[c].dropna().astype(str)) for c in
                             ("first_name", "last_name", "ssn", "member_id", "zip_code")))
    assert len(personal) > 1000
    birth_dates = set(silver["date_of_birth"].dropna())
    whole_values = [re.compile(p) for p in (r"\d{3}-?\d{2}-?\d{4}", r"\d{5}(-\d{4})?",      # SSN, ZIP
                                            r"\d{4}-\d{2}-\d{2}", r"\d{1,2}/\d{1,2}/\d{2,4}")]  # dates
    dated = []
    for column in predictions.columns:
        values = predictions[column].dropna()
        if values.map(lambda v: isinstance(v, dt.date)).any():
            dated.append(column)
            assert not set(values) & birth_dates, column
        elif values.dtype == object:
            texts = set(values.astype(str))
            assert not texts & personal, column
            assert not [t for t in texts for p in whole_values if p.fullmatch(t)], column
    assert set(dated) == {"scoring_date", "scored_at"}
    assert set(predictions["scoring_date"]) == {DAY1}
    assert predictions["age"].max() <= 90                                    # Safe Harbor: 90+ as 90
    # values too: no SSN, phone or e-mail shapes, no silver key outside the de-identified key column
    assert personal_data(predictions, ML_PATIENT_PREDICTIONS, member_keys(silver), key_column=MEMBER_KEY) == []


def test_validation_mode_scores_the_challenger_and_leaves_production_untouched(spark, copy_home):
    settings = _settings(copy_home)
    batch_inference.run(build_runtime(settings), DAY1, mode="production")
    store = DeltaCatalog(settings)
    version, before = store.version(ML_PATIENT_PREDICTIONS), _table(settings, ML_PATIENT_PREDICTIONS)
    quarantine = _table(settings, DATA_QUALITY_QUARANTINE)
    production_quarantine = quarantine[quarantine["stage"] != "batch_inference_validation"]

    result = batch_inference.run(build_runtime(settings), DAY1, mode="validation")
    assert result["alias"] == "challenger" and result["table"].endswith(ML_PATIENT_PREDICTIONS_VALIDATION)
    assert store.version(ML_PATIENT_PREDICTIONS) == version
    pd.testing.assert_frame_equal(_table(settings, ML_PATIENT_PREDICTIONS), before)
    validation = _partition(settings, ML_PATIENT_PREDICTIONS_VALIDATION, DAY1)
    assert len(validation) == len(before)
    quarantine = _table(settings, DATA_QUALITY_QUARANTINE)            # only its own stage's rows may change
    pd.testing.assert_frame_equal(quarantine[quarantine["stage"] != "batch_inference_validation"],
                                  production_quarantine)


def test_the_output_contract_check_names_what_is_broken(spark, copy_home):
    from pyspark.sql import functions as F

    from healthcare_mlops.scoring.batch import output_contract_problems

    settings = _settings(copy_home)
    batch_inference.run(build_runtime(settings), DAY1, mode="validation")
    good = spark.createDataFrame(DeltaCatalog(settings).read_arrow(ML_PATIENT_PREDICTIONS_VALIDATION))
    assert output_contract_problems(good, 1000.0) == []
    first = F.col("patient_natural_key") == F.lit(good.first()["patient_natural_key"])
    broken = (good.withColumn("interval_lower", F.when(first, F.lit(1e9)).otherwise(F.col("interval_lower")))
              .withColumn("risk_category", F.when(first, F.lit("extreme")).otherwise(F.col("risk_category")))
              .withColumn("model_run_id", F.when(first, F.lit(None)).otherwise(F.col("model_run_id"))))
    problems = "; ".join(output_contract_problems(broken, 1000.0))
    assert "interval_lower > predicted_annual_charges: 1 rows" in problems
    assert "risk_category not one of low, medium, high, critical: 1 rows" in problems
    assert "null model_run_id: 1 rows" in problems
    assert "high_risk != (risk_category = 'critical')" not in problems
    assert output_contract_problems(good.drop("region").withColumn("age", F.col("age").cast("double"))) == [
        "missing columns: region", "age is double, the contract says int"]
    assert output_contract_problems(good.limit(0)) == ["no rows were scored"]
    assert output_contract_problems(good.union(good.limit(1)))[-1] == "1 duplicate patient_natural_key rows"


def test_members_breaking_the_input_contract_are_quarantined_and_counts_reconcile(spark, copy_home):
    settings = _settings(copy_home)
    store = DeltaCatalog(settings)
    features = _features(settings)
    broken = {0: ("bmi", None, "missing value"), 1: ("region", "atlantis", "'atlantis' is not one of"),
              2: ("children", 11, "11 outside 0-10"), 3: ("age", 150, "150 outside 18-100"),
              4: ("bmi", float("nan"), "missing value")}
    keys = {}
    for row, (column, value, _) in broken.items():
        features.loc[row, column] = value
        keys[features.loc[row, "patient_natural_key"]] = broken[row]
    import pyarrow as pa

    schema = store.read_arrow(ML_INSURANCE_FEATURES).schema
    features["children"] = features["children"].astype("int32")
    features["age"] = features["age"].astype("int32")
    store.write(pa.Table.from_pandas(features, schema=schema, preserve_index=False), ML_INSURANCE_FEATURES,
                      mode="replace_partition", partition={"as_of_date": dt.date(2026, 1, 1)})

    result = batch_inference.run(build_runtime(settings), DAY1)
    assert result["quarantined"] == len(broken)
    assert result["features"] == len(features) == result["predictions"] + result["quarantined"]
    quarantine = _table(settings, DATA_QUALITY_QUARANTINE)
    ours = quarantine[quarantine["stage"] == "batch_inference"].set_index("record_key")
    assert set(ours.index) == set(keys)
    assert set(ours["source"]) == {ML_INSURANCE_FEATURES} and set(ours["as_of_date"]) == {DAY1}
    for key, (column, _, reason) in keys.items():
        assert ours.loc[key, "column_name"] == column
        assert reason in ours.loc[key, "reason"]
        assert set(json.loads(ours.loc[key, "raw_record"])) == {"age", "bmi", "children", "smoker", "region"}
    predicted = set(_partition(settings, ML_PATIENT_PREDICTIONS, DAY1)["patient_natural_key"])
    assert not predicted & set(keys)
    batch_inference.run(build_runtime(settings), DAY1)                          # a rerun replaces, not adds
    again = _table(settings, DATA_QUALITY_QUARANTINE)
    assert (again["stage"] == "batch_inference").sum() == len(broken)


def test_clear_errors_without_features_or_champion(spark, copy_home):
    settings = _settings(copy_home)
    with pytest.raises(UserError, match=r"no features on or before 2025-12-31: run the training pipeline first"):
        batch_inference.run(build_runtime(settings), "2025-12-31")
    with pytest.raises(UserError, match="mode must be one of production, validation, not 'shadow'"):
        batch_inference.run(build_runtime(settings), DAY1, mode="shadow")
    with pytest.raises(UserError, match="scoring date must be YYYY-MM-DD, not '01/02/2026'"):
        batch_inference.run(build_runtime(settings), "01/02/2026")
    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow

    configure_mlflow(settings).delete_registered_model_alias(settings.model_name, "champion")
    # a champion existed (the audit shows its promotion): its disappearance is a failure, not a wait
    with pytest.raises(UserError, match=r"no 'champion' alias, but the audit log's champion is version 1: "
                                        r"the alias was removed outside governance"):
        batch_inference.run(build_runtime(settings), DAY1)
    assert not DeltaCatalog(settings).exists(ML_PATIENT_PREDICTIONS)


def test_workers_get_the_model_as_a_path_or_as_shipped_files_and_score_alike(spark, pipeline_home):
    """Locally the workers read the driver's download; on a cluster the zipped files are broadcast."""
    import mlflow

    from healthcare_mlops.scoring import batch
    from healthcare_mlops.runtime.catalog import table_catalog

    settings = _settings(pipeline_home)
    model = batch_inference.resolve_model(build_runtime(settings), "champion")
    local_path = mlflow.artifacts.download_artifacts(model["uri"])
    rules = BusinessRules.for_model(scoring_thresholds(settings.variables), model["reference"])
    inputs = batch.model_input_names(mlflow.models.Model.load(local_path))
    features = table_catalog(settings, spark).read(ML_INSURANCE_FEATURES).limit(300)
    results = []
    for shared in (True, False):
        source = batch.model_source(model["uri"], local_path, shared_filesystem=shared,
                                    run_id=model["run_id"], loader=load_scoring_model)
        assert (source.local_path is None) is (not shared) and (source.archive is None) is shared
        results.append(batch.score_features(features, source, rules, inputs).toPandas()
                       .sort_values("patient_natural_key").reset_index(drop=True))
    pd.testing.assert_frame_equal(results[0], results[1])
    assert len(results[0]) == 300 and tuple(results[0].columns) == batch.SCORED_COLUMNS

    shipped = batch.ModelSource(uri=model["uri"], archive=batch.zip_folder(local_path), run_id="other-run",
                                loader=load_scoring_model)
    assert (Path(shipped.materialize()) / "MLmodel").is_file()
    first = batch.cached_model(shipped)
    assert batch.cached_model(shipped) is first                       # loaded once per process
    assert batch.cached_model(batch.ModelSource(model["uri"], local_path, run_id=model["run_id"],
                                                loader=load_scoring_model)) is not first
    with pytest.raises(ValueError, match="no loader"):
        batch.cached_model(batch.ModelSource(model["uri"], local_path, run_id="no-loader"))


def test_score_batch_scores_valid_rows_and_skips_the_rest(pipeline_home):
    import mlflow

    from healthcare_mlops.scoring import batch

    settings = _settings(pipeline_home)
    model = batch_inference.resolve_model(build_runtime(settings), "champion")
    path = mlflow.artifacts.download_artifacts(model["uri"])
    unwrapped = batch.cached_model(batch.ModelSource(model["uri"], path, run_id=model["run_id"],
                                                     loader=load_scoring_model))
    pyfunc = mlflow.pyfunc.load_model(path)
    frame = _features(settings).head(5).copy()
    frame.loc[1, "region"] = "atlantis"
    scored = batch.score_frame(frame, unwrapped, RULES)
    assert list(scored["patient_natural_key"]) == list(frame["patient_natural_key"].drop(index=1))
    # any other pyfunc is scored through its predict, to the same numbers (without explanations)
    through_predict = batch.score_frame(frame, pyfunc, RULES)
    pd.testing.assert_frame_equal(through_predict.drop(columns=list(batch.EXPLAINED) + ["review_reasons"]),
                                  scored.drop(columns=list(batch.EXPLAINED) + ["review_reasons"]))
    direct = pyfunc.predict(frame.drop(index=1)[list(batch.MODEL_INPUT_COLUMNS)])
    for column in ("risk_score", "risk_category"):
        assert list(scored[column]) == list(direct[column])
    assert list(scored["predicted_annual_charges"]) == list(np.maximum(direct["predicted_annual_charges"], 1000.0))


def test_today_is_the_default_scoring_date():
    assert batch_inference.resolve_scoring_date("") == dt.datetime.now(dt.timezone.utc).date()
    assert batch_inference.resolve_scoring_date(None) == dt.datetime.now(dt.timezone.utc).date()
    assert batch_inference.resolve_scoring_date("2026-02-03") == dt.date(2026, 2, 3)


def _job(home, day: dt.date, failpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HEALTHCARE_MLOPS_HOME": str(home)}
    env.pop(FAILPOINT_ENV, None)
    if failpoint:
        env[FAILPOINT_ENV] = failpoint
    command = [sys.executable, str(REPO / "jobs" / "batch_inference.py"), "--target", "local",
               "--catalog", "hc_local", "--schema", "insurance", "--model_name", "insurance_model",
               "--scoring_date", day.isoformat(), "--mode", "production", "--min_predicted_charges", "1000",
               "--review_interval_width_ratio", "1.5"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=str(REPO))


@pytest.mark.parametrize("point", [batch_inference.BEFORE_WRITE, batch_inference.BETWEEN_WRITES])
def test_a_job_killed_mid_write_leaves_the_previous_state(spark, copy_home, point):
    settings = _settings(copy_home)
    store = DeltaCatalog(settings)
    batch_inference.run(build_runtime(settings), DAY1)
    version, before = store.version(ML_PATIENT_PREDICTIONS), _table(settings, ML_PATIENT_PREDICTIONS)

    killed = _job(copy_home, DAY1, failpoint=point)
    assert killed.returncode == KILLED_EXIT_CODE, killed.stderr[-2000:]
    assert store.version(ML_PATIENT_PREDICTIONS) == version
    pd.testing.assert_frame_equal(_table(settings, ML_PATIENT_PREDICTIONS), before)

    batch_inference.run(build_runtime(settings), DAY1)                                  # a normal rerun succeeds
    assert store.version(ML_PATIENT_PREDICTIONS) == version + 1
    pd.testing.assert_frame_equal(_partition(settings, ML_PATIENT_PREDICTIONS, DAY1).drop(columns=["scored_at"]),
                                  before.sort_values("patient_natural_key").reset_index(drop=True)
                                  .drop(columns=["scored_at"]))


def test_the_job_script_reports_a_user_error_in_one_line(copy_home):
    result = _job(copy_home, dt.date(2025, 6, 1))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: hc_local.insurance.ml_insurance_features has no features on or before 2025-06-01")
    assert "Traceback" not in result.stderr


def test_the_input_contract_judges_each_value_of_a_request():
    """Text that looks like a number is not one, and one bad value does not spoil its column."""
    from healthcare_mlops.modeling.input_contract import row_problems

    good = {"age": 35, "bmi": 28.5, "children": 1, "smoker": False, "region": "northeast"}
    frame = pd.DataFrame([{**good, "age": "35"}, {**good, "age": True}, good, {**good, "bmi": None}])
    assert list(row_problems(frame)) == ["age: expected a number, got the text '35'",
                                         "age: expected a number, got true", None, "bmi: missing value"]
    typed = pd.DataFrame([good, {**good, "age": 101}])
    assert list(row_problems(typed)) == [None, "age: 101 outside 18-100"]
