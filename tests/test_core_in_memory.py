"""Core modules that only the slow suite reached, on small in-memory frames and small fakes.

The monitoring run's report and the reproduction report (text built from numbers), the
training reference's check, the reference counts monitoring compares a batch with, the
retrain trigger (a fake launcher records what the real one is asked), governance's headline
metrics of a loaded model (a fake pyfunc that predicts from a column), batch scoring's pandas
core with a model trained in memory, the console's charts, and a scoring request's refusals.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from app import charts
from healthcare_mlops.data.synthetic import synthetic_members
from healthcare_mlops.errors import UserError
from healthcare_mlops.explanations.contributions import EXPLANATION_COLUMNS
from healthcare_mlops.features.definitions import LABEL_COLUMN, MODEL_INPUT_COLUMNS
from healthcare_mlops.governance.evaluation import scored_metrics
from healthcare_mlops.governance.reproduce import Comparison, Reproduction
from healthcare_mlops.governance.reproduction_report import VALUE_WIDTH, format_report
from healthcare_mlops.modeling.pyfunc import InsuranceRiskModel
from healthcare_mlops.modeling.training import reference_quantiles, train
from healthcare_mlops.monitoring import retrain
from healthcare_mlops.monitoring import statistics as st
from healthcare_mlops.monitoring.drift import category_codes, reference_counts, rounded_values
from healthcare_mlops.monitoring.evaluation import CATEGORICAL, COUNT_COLUMNS, NUMERIC, ColumnSpec
from healthcare_mlops.monitoring.reference import REFERENCE_KEYS, check_reference, model_reference
from healthcare_mlops.monitoring.report import summary_lines
from healthcare_mlops.scoring import batch
from healthcare_mlops.features.training_range import TrainingRange
from healthcare_mlops.scoring.rules import BELOW_MINIMUM, CRITICAL_RISK, BusinessRules, ScoringThresholds

# -- monitoring/report.py ---------------------------------------------------------------------------


def _summary(alerts=(), batch=None) -> dict:
    return {"window_start": dt.date(2026, 1, 1), "window_end": dt.date(2026, 1, 7), "run_id": "r1", "volume": 120,
            "reference_version": "3", "performance_batch": batch, "alerts": list(alerts)}


def test_the_monitoring_report_lists_psi_and_composite_and_says_when_nothing_is_wrong():
    drift = [{"metric": "psi", "column_name": "bmi", "value": 0.31, "status": "significant"},
             {"metric": "js_distance", "column_name": "bmi", "value": 0.2, "status": "info"},
             {"metric": "composite_drift", "column_name": "", "value": None, "status": "ok"}]
    lines = summary_lines(_summary(), drift)
    assert lines[0].startswith("model_monitoring window 2026-01-01..2026-01-07 (run r1): 120 predictions")
    assert "version 3" in lines[0]
    assert [line.split()[:2] for line in lines[1:3]] == [["bmi", "psi"], ["(batch)", "composite_drift"]]
    assert "0.3100" in lines[1] and "nan" in lines[2]           # no value is shown as such, not as 0
    assert not any("js_distance" in line for line in lines)
    assert lines[-2] == "  performance: pending (no scored batch has later charges yet)"
    assert lines[-1] == "no alerts"


def test_the_monitoring_report_names_the_labelled_batch_and_each_alert():
    alert = {"severity": "critical", "type": "composite_drift", "alert_id": "a-1", "message": "inputs moved"}
    lines = summary_lines(_summary([alert], {"scoring_date": "2025-01-07", "label_date": "2026-01-07"}), [])
    assert "predictions of 2025-01-07 against charges of 2026-01-07" in lines[-2]
    assert lines[-1].startswith("ALERT critical") and lines[-1].endswith("a-1  inputs moved")
    assert "no alerts" not in lines


# -- governance/reproduction_report.py --------------------------------------------------------------

def test_the_reproduction_report_puts_the_outcome_first_and_lists_each_difference():
    long = "x" * (VALUE_WIDTH + 10)
    report = Reproduction("hc.insurance.model", "4", "2026-01-02T03:04:05Z",
                          comparisons=[Comparison("training rows", "1000", "1000", True),
                                       Comparison("model hash", long, "y", False)],
                          notes=["the feature table was vacuumed"])
    text = format_report(report).splitlines()
    assert text[0] == f"hc.insurance.model version 4: {report.result}"
    assert text[1] == "reproduced at 2026-01-02T03:04:05Z"
    assert text[2] == "note: the feature table was vacuumed"
    rows = {line.split("  ")[0].strip(): line for line in text[4:6]}
    assert rows["training rows"].endswith("yes") and rows["model hash"].endswith("NO")
    assert "x" * (VALUE_WIDTH - 3) + "..." in rows["model hash"] and long not in rows["model hash"]
    assert text[6:] == ["differences:", f"  model hash: recorded {long}, reproduced y"]


def test_a_reproduction_without_comparisons_is_its_outcome_only():
    report = Reproduction("m", "1", "now", error="the training data is gone")
    assert format_report(report).splitlines() == [f"m version 1: {report.result}", "reproduced at now"]


# -- monitoring/reference.py -------------------------------------------------------------------------

def test_a_training_reference_missing_a_part_is_refused_naming_it():
    complete = {key: {"x": 1} for key in REFERENCE_KEYS}
    assert check_reference(complete, "v1") is complete
    for key in REFERENCE_KEYS:
        with pytest.raises(UserError, match=f"the training reference of v1 lacks {key}"):
            check_reference({**complete, key: {}}, "v1")


def test_a_reference_is_checked_whole_and_refused_with_empty_counts():
    complete = {key: {"x": 1} for key in REFERENCE_KEYS}
    counts = pd.DataFrame({"column_name": ["bmi"], "bin": [0], "count": [3]})
    built = model_reference("m", "7", "run-7", complete, counts)
    assert (built.model_name, built.version, built.run_id) == ("m", "7", "run-7") and built.counts is counts
    with pytest.raises(UserError, match="the reference counts of m version 7 are empty"):
        model_reference("m", "7", "run-7", complete, counts.iloc[:0])
    with pytest.raises(UserError, match="the training reference of m version 7 lacks prediction"):
        model_reference("m", "7", "run-7", {**complete, "prediction": None}, counts)


# -- monitoring/drift.py: the reference side, in pandas ------------------------------------------

def test_category_codes_map_case_insensitively_and_keep_unseen_and_missing_apart():
    values = pd.Series(["south", "North", None, "mars", "north"])
    assert category_codes(values, ("north", "south")).tolist() == [1, 0, st.MISSING_BIN, 2, 0]


def test_rounded_values_round_half_up_at_the_given_decimals():
    values = np.array([1.005, 2.5, -0.5, 123.0])
    assert rounded_values(values, None) is values
    assert rounded_values(np.array([2.5, 3.5, 14.0, 15.0]), 0).tolist() == [3.0, 4.0, 14.0, 15.0]
    assert rounded_values(np.array([14.0, 15.0, 1249.0]), -1).tolist() == [10.0, 20.0, 1250.0]


def test_reference_counts_count_every_row_once_per_column_in_the_long_form():
    sample = pd.DataFrame({"bmi": [18.0, 25.5, 25.5, 40.0, None], "region": ["north", "NORTH", "south", None, "x"]})
    specs = [ColumnSpec("bmi", "bmi", NUMERIC, edges=(20.0, 30.0), decimals=0),
             ColumnSpec("region", "region", CATEGORICAL, categories=("north", "south"))]
    counts = reference_counts(sample, specs)
    assert list(counts.columns) == list(COUNT_COLUMNS) and set(counts["side"]) == {"reference"}
    per_column = counts.groupby("column_name")["count"].sum().to_dict()
    assert per_column == {"bmi": len(sample), "region": len(sample)}
    bmi = counts[counts["column_name"] == "bmi"].groupby("bin")["count"].sum().to_dict()
    assert bmi == {0: 1, 1: 2, 2: 1, st.MISSING_BIN: 1}
    region = counts[counts["column_name"] == "region"].groupby("bin")["count"].sum().to_dict()
    assert region == {0: 2, 1: 1, 2: 1, st.MISSING_BIN: 1}           # 2: unseen ("x")


# -- monitoring/retrain.py: a fake launcher records what the job launcher is asked -----------------

@dataclass
class _Run:
    run_id: str
    status: str = "SUCCEEDED"


class RecordingLauncher:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def run_now(self, job_id, parameters, **options):
        self.calls.append((job_id, parameters, options))
        return _Run(f"run-{len(self.calls)}")


class RecordingLinks(list):
    """Stands for ``alerts.record_retrain`` on a catalog: records each (alert ids, retrain run id)."""

    def __call__(self, ids: list[str], run_id: str) -> None:
        self.append((ids, run_id))


@pytest.fixture
def window():
    return dt.date(2026, 1, 1), dt.date(2026, 1, 7)


def test_the_idempotency_token_is_one_per_window_and_alerts_and_fits_the_jobs_api(settings, window):
    token = retrain.idempotency_token(settings.tables, *window, ["b", "a"])
    assert token == retrain.idempotency_token(settings.tables, *window, ["a", "b"]) and len(token) <= 64
    assert token != retrain.idempotency_token(settings.tables, window[0], dt.date(2026, 1, 8), ["a", "b"])
    assert token != retrain.idempotency_token(settings.tables, *window, ["a"])


def test_the_retrain_trains_on_the_latest_load_and_validates_on_the_windows_end(window):
    assert retrain.retrain_parameters(window[1], dt.date(2025, 12, 31)) == {"as_of": "2025-12-31",
                                                                          "scoring_date": "2026-01-07"}
    assert retrain.retrain_parameters(window[1], None) == {"scoring_date": "2026-01-07"}


def test_a_retrain_is_started_once_through_the_launcher_and_not_without_a_job_id(settings, window):
    launcher = RecordingLauncher()
    assert retrain.trigger_retrain(settings.tables, launcher, "  ", *window, ["a"]) is None
    assert launcher.calls == []
    run = retrain.trigger_retrain(settings.tables, launcher, " 42 ", *window, ["a"], echo=False, latest_load=window[0])
    assert run.run_id == "run-1"
    [(job_id, parameters, options)] = launcher.calls
    assert job_id == "42" and parameters == {"as_of": "2026-01-01", "scoring_date": "2026-01-07"}
    assert options["trigger"] == retrain.TRIGGER and options["wait"] is True
    assert options["idempotency_token"] == retrain.idempotency_token(settings.tables, *window, ["a"])


def test_without_critical_alerts_or_a_retrain_job_nothing_is_started(settings, window):
    launcher, linked = RecordingLauncher(), RecordingLinks()
    assert retrain.retrain_once(settings.tables, launcher, "42", window, [], pd.DataFrame(), linked) == (None, "")
    critical = [{"alert_id": "a", "retrain_run_id": None}]
    run_id, line = retrain.retrain_once(settings.tables, launcher, None, window, critical, pd.DataFrame(), linked)
    assert run_id is None and "no --retrain_job_id" in line and launcher.calls == [] and linked == []


def test_a_retrain_is_linked_to_its_alerts_once_and_a_rerun_reuses_it(settings, window):
    launcher, linked = RecordingLauncher(), RecordingLinks()
    critical = [{"alert_id": "a", "retrain_run_id": None}, {"alert_id": "b", "retrain_run_id": None}]
    run_id, line = retrain.retrain_once(settings.tables, launcher, "42", window, critical, pd.DataFrame(), linked)
    assert run_id == "run-1" and "run run-1" in line and linked == [(["a", "b"], "run-1")]
    assert [a["retrain_run_id"] for a in critical] == ["run-1", "run-1"]
    # a rerun of the window: its earlier alert carries the run; the new alert is linked to it, nothing starts
    previous = pd.DataFrame({"alert_id": ["a"], "retrain_run_id": ["run-1"]})
    again = [{"alert_id": "c", "retrain_run_id": None}]
    run_id, line = retrain.retrain_once(settings.tables, launcher, "42", window, again, previous, linked)
    assert run_id == "run-1" and "already triggered" in line
    assert len(launcher.calls) == 1 and linked[-1] == (["c"], "run-1")


# -- governance/evaluation.py: headline metrics of a loaded model ----------------------------------

class ScaledModel:
    """A fake pyfunc: predicts ``factor`` x the row's actual charges; references as the real one carries."""

    def __init__(self, factor: float, reference: np.ndarray) -> None:
        self.factor, self.prediction_reference, self.actual_reference = factor, reference, reference

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"predicted_annual_charges": rows["charges_seen"] * self.factor})

    def unwrap_python_model(self):
        return self


def test_a_perfect_model_scores_perfectly_and_a_biased_one_shows_its_bias():
    actual = np.linspace(1_000.0, 60_000.0, 200)
    rows = pd.DataFrame({"charges_seen": actual, LABEL_COLUMN: actual})
    perfect = scored_metrics(ScaledModel(1.0, reference_quantiles(actual)), ["charges_seen"], rows)
    assert perfect["r2"] == pytest.approx(1.0) and perfect["mae"] == pytest.approx(0.0)
    assert perfect["risk_score_mae"] == pytest.approx(0.0) and perfect["high_risk_capture"] == pytest.approx(1.0)
    assert perfect["calibration"] == pytest.approx(1.0) and perfect["test_rows"] == 200
    biased = scored_metrics(ScaledModel(1.2, reference_quantiles(actual)), ["charges_seen"], rows)
    assert biased["calibration"] == pytest.approx(1.2)
    assert biased["mae"] == pytest.approx(0.2 * actual.mean())
    assert biased["r2"] < 1.0 and biased["risk_score_mae"] > 0.0


# -- scoring/batch.py: the pandas core, with a model trained in memory -----------------------------

@pytest.fixture(scope="module")
def trained():
    members = pd.DataFrame(synthetic_members(2000, np.random.default_rng(3)))
    members["patient_natural_key"] = [f"m{i}" for i in range(len(members))]
    return train(members, seed=3, candidates=("linear_huber",))


def _features(n: int, seed: int) -> pd.DataFrame:
    frame = pd.DataFrame(synthetic_members(n, np.random.default_rng(seed)))
    return frame.assign(patient_natural_key=[f"k{i}" for i in range(n)])[
        ["patient_natural_key", *MODEL_INPUT_COLUMNS, "sex", "age_band"]]


def test_batch_scoring_skips_broken_rows_floors_flags_and_explains_the_rest(trained):
    # What the batch scorer's loader (runtime/model_loading.py) unwraps from the pyfunc.
    model = InsuranceRiskModel(trained.pipeline, trained.intervals, trained.prediction_reference,
                               trained.actual_reference, explainer=trained.explainer)
    frame = _features(200, 8)
    frame.loc[1, "region"] = "atlantis"
    floor = float(np.quantile(model.predict(None, frame.drop(index=1)[list(MODEL_INPUT_COLUMNS)])
                              ["predicted_annual_charges"], 0.2))
    rules = BusinessRules(ScoringThresholds(min_predicted_charges=floor, review_interval_width_ratio=9.0),
                          TrainingRange.from_reference(trained.reference))
    scored = batch.score_frame(frame, model, rules, explain=batch.EXPLAIN_ALL)
    assert list(scored["patient_natural_key"]) == list(frame["patient_natural_key"].drop(index=1))
    assert scored["predicted_annual_charges"].min() == pytest.approx(floor)
    below = scored["review_reasons"].str.startswith(BELOW_MINIMUM)
    assert below.any() and (scored.loc[below, "floor_adjustment"] > 0).all()
    total = scored[list(EXPLANATION_COLUMNS)].sum(axis=1)
    assert np.abs(total - scored["predicted_annual_charges"]).max() <= 1.0
    critical = scored["risk_category"] == "critical"
    assert critical.any() and scored.loc[critical, "review_reasons"].str.startswith(CRITICAL_RISK).all()
    unexplained = batch.score_frame(frame, model, rules, explain=batch.EXPLAIN_NONE)
    assert unexplained[list(EXPLANATION_COLUMNS)].isna().all().all()
    assert list(unexplained["predicted_annual_charges"]) == pytest.approx(list(scored["predicted_annual_charges"]))


def test_broken_rows_become_quarantine_rows_with_their_inputs_only():
    frame = _features(3, 1)
    frame.loc[2, "bmi"] = -4.0
    problems = pd.Series([None, None, "bmi: out of range"], index=frame.index, dtype=object)
    rows = batch.problem_rows(frame, problems)
    assert list(rows["patient_natural_key"]) == ["k2"] and list(rows["column_name"]) == ["bmi"]
    assert list(rows["reason"]) == ["out of range"]
    assert '"bmi": -4.0' in rows.loc[0, "raw_record"] and "sex" not in rows.loc[0, "raw_record"]


def test_batches_are_regrouped_into_chunks_of_about_the_given_rows():
    def of(n: int) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict({"x": list(range(n))})

    sizes = [b.num_rows for b in batch.coalesce(iter([of(3), of(0), of(4), of(2), of(6)]), 5)]
    assert sizes == [7, 8]
    assert [b.num_rows for b in batch.coalesce(iter([of(2)]), 5)] == [2]


# -- app/charts.py -----------------------------------------------------------------------------------

def _layers(chart) -> list[dict]:
    return chart.to_dict()["layer"]


def test_the_psi_heatmap_colours_each_cell_by_its_band():
    psi = pd.DataFrame({"run_label": ["d1", "d1", "d2", "d2"], "column_name": ["bmi", "age", "bmi", "age"],
                        "value": [0.05, 0.1, 0.3, 0.249]})
    chart = charts.psi_heatmap(psi)
    data = chart.to_dict()["datasets"]
    [rows] = data.values()
    bands = {(r["run_label"], r["column_name"]): r["band"] for r in rows}
    stable, moderate, significant = charts.PSI_BANDS
    assert bands == {("d1", "bmi"): stable, ("d1", "age"): moderate, ("d2", "bmi"): significant,
                     ("d2", "age"): moderate}


def test_the_composite_drift_chart_draws_the_threshold_and_fits_values_above_one():
    history = pd.DataFrame({"window_end": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)], "value": [0.2, 1.4]})
    chart = charts.composite_drift(history, 0.3)
    line = _layers(chart)[0]
    assert line["encoding"]["y"]["scale"]["domain"] == [0, 1.4]
    assert "alert > 0.3" in str(chart.to_dict())


def test_job_durations_colour_each_status_it_shows():
    runs = pd.DataFrame({"job_key": ["a", "b"], "start_time": pd.to_datetime(["2026-01-01", "2026-01-02"]),
                         "duration_seconds": [10.0, 20.0], "status": ["SUCCEEDED", "FAILED"]})
    color = _layers(charts.job_durations(runs))[1]["encoding"]["color"]
    assert color["scale"]["domain"] == ["FAILED", "SUCCEEDED"]
    assert color["scale"]["range"] == [charts.STATUS_COLORS.get(s, charts.LINE_COLOR) for s in ("FAILED", "SUCCEEDED")]


# -- scoring/realtime.py and modeling/scoring_request.py: refusals without MLflow -----------------

class RefusingModel:
    """A loaded model that refuses every request with ``error``."""

    def __init__(self, error: Exception):
        self.error = error

    def predict(self, frame, params=None):
        raise self.error


class ModelRefusal(Exception):
    message = "age: outside 18-100"


def test_the_in_process_scorer_turns_the_models_refusal_into_a_user_error_and_nothing_else():
    from healthcare_mlops.scoring.realtime import InProcessScorer

    refusing = InProcessScorer(lambda: (RefusingModel(ModelRefusal()), "1"), (ModelRefusal,))
    with pytest.raises(UserError, match="age: outside 18-100"):
        refusing.score({"age": 300})
    broken = InProcessScorer(lambda: (RefusingModel(RuntimeError("disk gone")), "1"), (ModelRefusal,))
    with pytest.raises(RuntimeError, match="disk gone"):      # a failure is not a refusal
        broken.score({"age": 30})


def test_a_refused_request_writes_its_own_json_with_the_400_error_code():
    from healthcare_mlops.modeling.scoring_request import INVALID_PARAMETER_VALUE, RequestRefused, checked_request

    with pytest.raises(RequestRefused) as refused:
        checked_request(b'{"dataframe_records": [{"SSN": "123-45-6789", "age": 30}]}', "application/json")
    body = json.loads(refused.value.serialize_as_json())
    assert body["error_code"] == INVALID_PARAMETER_VALUE == "INVALID_PARAMETER_VALUE"
    assert [e["field"] for e in body["errors"]] == ["SSN"] and "123-45-6789" not in refused.value.serialize_as_json()


def test_the_pyfunc_hands_mlflow_the_refusal_as_a_400_with_the_same_json():
    from healthcare_mlops.modeling.pyfunc import RefusedByModel
    from healthcare_mlops.modeling.scoring_request import request_refusal

    refusal = request_refusal("params.on_error", "expected one of fail, skip")
    handed = RefusedByModel(refusal)
    assert handed.get_http_status_code() == 400 and handed.error_code == refusal.error_code
    assert handed.serialize_as_json() == refusal.serialize_as_json() and handed.errors == refusal.errors
