"""Per-member explanations: exact additivity, folding, words, batch columns, real time, monitoring weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_serving import server  # noqa: F401  (fixture: `healthcare-mlops serve` on a copy of the pipeline home)

from healthcare_mlops.composition import build_runtime
from healthcare_mlops.data.synthetic import synthetic_members
from healthcare_mlops.explanations.contributions import (CONTRIBUTION_COLUMNS, EXPLANATION_COLUMNS, FLOOR_COLUMN,
                                                         ExplanationUnavailable, fold_matrix)
from healthcare_mlops.explanations.reasons import OUTSIDE_WORDS, top_reasons, waterfall_steps
from healthcare_mlops.features.definitions import MODEL_INPUT_COLUMNS
from healthcare_mlops.modeling.pyfunc import OUTPUT_COLUMNS, InsuranceRiskModel
from healthcare_mlops.modeling.training import IMPORTANCE_KEY, train
from healthcare_mlops.features.training_range import TrainingRange
from healthcare_mlops.scoring.rules import BusinessRules, ScoringThresholds

SMOKER = {"age": 52, "bmi": 41.2, "children": 2, "smoker": True, "region": "southeast"}
REASONS = {"reasons": True}


def _members(n: int, seed: int) -> pd.DataFrame:
    frame = pd.DataFrame(synthetic_members(n, np.random.default_rng(seed)))
    return frame.assign(patient_natural_key=[f"m{seed}-{i}" for i in range(n)])


def _model(result) -> InsuranceRiskModel:
    return InsuranceRiskModel(result.pipeline, result.intervals, result.prediction_reference,
                              result.actual_reference, explainer=result.explainer)


@pytest.fixture(scope="module")
def linear():
    return train(_members(2000, 3), seed=3, candidates=("linear_huber",))


@pytest.fixture(scope="module")
def members():
    return _members(300, 11)[list(MODEL_INPUT_COLUMNS)]


def _explained(result, frame: pd.DataFrame) -> pd.DataFrame:
    return _model(result).predict(None, frame, params=REASONS)


def _assert_additive(out: pd.DataFrame) -> None:
    total = out[list(EXPLANATION_COLUMNS)].sum(axis=1)
    assert np.abs(total - out["predicted_annual_charges"]).max() <= 1.0


@pytest.mark.parametrize("candidate", ["linear_huber", *(pytest.param(c, marks=pytest.mark.slow) for c in (   # trains
    "hist_gradient_boosting_poisson", "gradient_boosting_huber", "random_forest",
    "hist_gradient_boosting_absolute_error"))])
def test_base_plus_contributions_plus_floor_is_the_prediction_to_1_usd(candidate, linear, members):
    result = linear if candidate == "linear_huber" else train(_members(600, 5), seed=5, candidates=(candidate,))
    out = _explained(result, members)
    _assert_additive(out)
    raw = out["predicted_annual_charges"] - out[FLOOR_COLUMN]
    assert (out[FLOOR_COLUMN] >= 0).all() and (out.loc[out[FLOOR_COLUMN] > 0, "predicted_annual_charges"] == 0).all()
    assert np.abs(raw - result.pipeline.predict(members)).max() <= 1.0     # the model's own prediction
    assert out["base_charges"].nunique() == 1


def test_the_linear_base_is_the_mean_training_prediction(linear):
    rows = _members(2000, 3)
    assert linear.explainer.base == pytest.approx(linear.pipeline.predict(rows[list(MODEL_INPUT_COLUMNS)]).mean(),
                                                  rel=0.02)


def test_smoker_yes_to_no_moves_the_smoker_contribution_most_and_leaves_age_children_region(linear):
    both = pd.DataFrame([SMOKER, {**SMOKER, "smoker": False}])
    out = _explained(linear, both)
    contributions = out[list(CONTRIBUTION_COLUMNS)]
    change = contributions.iloc[0] - contributions.iloc[1]
    assert change.abs().idxmax() == "contribution_smoker" and change["contribution_smoker"] > 10_000
    for unchanged in ("contribution_age", "contribution_children", "contribution_region"):
        assert change[unchanged] == pytest.approx(0.0, abs=1e-6)
    assert out.loc[0, "top_reasons"].startswith("smoker: +")
    assert "non-smoker: -" in out.loc[1, "top_reasons"]


def test_smoker_obese_is_shared_equally_between_smoker_and_bmi():
    fold = fold_matrix(["age", "smoker_obese", "bmi_category", "family_size_category", "region"], MODEL_INPUT_COLUMNS)
    index = {name: i for i, name in enumerate(MODEL_INPUT_COLUMNS)}
    assert fold[1, index["smoker"]] == fold[1, index["bmi"]] == 0.5 and fold[1].sum() == 1.0
    assert fold[2, index["bmi"]] == 1.0 and fold[3, index["children"]] == 1.0
    with pytest.raises(ExplanationUnavailable, match="sex"):
        fold_matrix(["sex"], MODEL_INPUT_COLUMNS)


def test_reasons_in_words_largest_first_and_the_outside_flag():
    inputs = pd.DataFrame([SMOKER, {**SMOKER, "smoker": False, "bmi": 60.0}])
    contributions = np.array([[2_000.0, 9_810.0, 20.0, 23_400.0, -300.0], [100.0, 2_000.0, 0.0, -5_000.0, 0.0]])
    outside = np.array([[False] * 5, [False, True, False, False, False]])
    words = top_reasons(inputs, contributions, MODEL_INPUT_COLUMNS, outside).to_pylist()
    assert words[0] == "smoker: +23,400 USD; bmi 41.2: +9,800 USD; age 52: +2,000 USD"
    assert words[1] == f"{OUTSIDE_WORDS}: bmi; non-smoker: -5,000 USD; bmi 60.0: +2,000 USD; age 52: +100 USD"


def test_a_member_outside_the_training_range_is_flagged_in_real_time(linear):
    out = _explained(linear, pd.DataFrame([{**SMOKER, "bmi": 70.0}, SMOKER]))
    assert list(out["outside_training_range"]) == ["bmi", ""]
    assert out.loc[0, "top_reasons"].startswith(f"{OUTSIDE_WORDS}: bmi")
    assert OUTSIDE_WORDS not in out.loc[1, "top_reasons"]


def test_without_the_flag_the_output_is_unchanged(linear, members):
    model = _model(linear)
    plain = model.predict(None, members)
    assert tuple(plain.columns) == OUTPUT_COLUMNS
    pd.testing.assert_frame_equal(plain, model.predict(None, members, params={"reasons": False}))
    pd.testing.assert_frame_equal(plain, _explained(linear, members)[list(OUTPUT_COLUMNS)])


def test_a_model_without_an_explainer_refuses_reasons_with_the_cause(linear, members):
    from mlflow.exceptions import MlflowException

    bare = InsuranceRiskModel(linear.pipeline, linear.intervals, linear.prediction_reference, linear.actual_reference)
    with pytest.raises(MlflowException, match="no exact explanation"):
        bare.predict(None, members, params=REASONS)


def test_monitoring_weights_are_the_stored_mean_absolute_contributions(linear):
    from healthcare_mlops.monitoring.evaluation import column_specs

    usd = linear.reference[IMPORTANCE_KEY]
    assert set(usd) == set(MODEL_INPUT_COLUMNS) and max(usd, key=usd.get) == "smoker"
    total = sum(usd.values())
    weights = {spec.name: spec.importance for spec in column_specs(linear.reference) if spec.is_input}
    assert weights == pytest.approx({name: value / total for name, value in usd.items()})


def test_the_waterfall_runs_from_the_base_through_each_input_and_the_floor_to_the_prediction(linear):
    out = _explained(linear, pd.DataFrame([SMOKER])).iloc[0].to_dict()
    member = {**SMOKER, **out, FLOOR_COLUMN: 150.0,
              "predicted_annual_charges": out["predicted_annual_charges"] + 150.0}
    steps = waterfall_steps(member, MODEL_INPUT_COLUMNS)
    assert list(steps["label"]) == ["base (average member)", "age 52", "bmi 41.2", "children 2", "smoker",
                                    "region southeast", "minimum charge floor", "predicted charges"]
    assert steps["usd"].iloc[:-1].sum() == pytest.approx(steps["usd"].iloc[-1], abs=1.0)


# ----------------------------------------------------------------------------- batch scoring

def test_batch_scoring_writes_contributions_and_reasons_in_words(pipeline_home):
    import mlflow

    from healthcare_mlops.runtime.model_loading import load_scoring_model
    from healthcare_mlops.scoring import batch
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tasks import batch_inference

    settings = resolve_settings("local", pipeline_home)
    model = batch_inference.resolve_model(build_runtime(settings), "champion")
    pyfunc = batch.cached_model(batch.ModelSource(model["uri"], mlflow.artifacts.download_artifacts(model["uri"]),
                                                  run_id=model["run_id"], loader=load_scoring_model))
    frame = pd.DataFrame([{**SMOKER, "bmi": 45.0, "age": 63}, {**SMOKER, "smoker": False, "age": 19, "bmi": 19.0},
                          {**SMOKER, "age": 40, "bmi": 28.0, "smoker": False}, {**SMOKER, "bmi": 60.0}])
    frame = frame.assign(patient_natural_key=[f"k{i}" for i in range(len(frame))], sex="female", age_band="x")
    rules = BusinessRules(ScoringThresholds(min_predicted_charges=5_000.0, review_interval_width_ratio=9.0),
                          training_range=TrainingRange.from_reference(model["reference"]))
    scored = batch.score_frame(frame, pyfunc, rules, explain=batch.EXPLAIN_ALL)
    _assert_additive(scored)
    assert scored.loc[1, FLOOR_COLUMN] > 0 and scored.loc[1, "predicted_annual_charges"] == 5_000.0   # the floor line
    critical = scored.loc[0]
    assert critical["review_reasons"].startswith("critical_risk; smoker: +")
    assert "bmi 45.0: +" in critical["review_reasons"]
    assert scored.loc[2, "review_reasons"] == "" and scored.loc[2, "top_reasons"] != ""
    assert scored.loc[3, "review_reasons"].startswith("critical_risk;outside_training_range:bmi; ")
    assert f"{OUTSIDE_WORDS}: bmi" in scored.loc[3, "review_reasons"]
    unexplained = batch.score_frame(frame, pyfunc, rules, explain=batch.EXPLAIN_NONE)
    assert unexplained[list(EXPLANATION_COLUMNS)].isna().all().all()
    assert list(unexplained["review_reasons"]) == ["critical_risk", "below_minimum_charges", "",
                                                   "critical_risk;outside_training_range:bmi"]
    # The job's default: the flagged members carry the same explanation, the unflagged one none.
    flagged = batch.score_frame(frame, pyfunc, rules)
    assert flagged.loc[2, list(EXPLANATION_COLUMNS)].isna().all() and flagged.loc[2, "top_reasons"] is None
    same = [0, 1, 3]
    pd.testing.assert_frame_equal(flagged.loc[same], scored.loc[same])
    with pytest.raises(ValueError, match="explain must be one of"):
        batch.score_frame(frame, pyfunc, rules, explain="some")


# ----------------------------------------------------------------------------- real time, over HTTP

def test_the_scoring_server_returns_the_reasons_only_when_asked(server):  # noqa: F811
    from test_serving import _post

    from healthcare_mlops.scoring.realtime import ScoringServerScorer

    url = f"{server['url']}/invocations"
    status, plain = _post(url, {"dataframe_records": [SMOKER]})
    assert status == 200 and set(plain["predictions"][0]) == set(OUTPUT_COLUMNS)
    status, asked = _post(url, {"dataframe_records": [SMOKER, {**SMOKER, "bmi": 70.0}], "params": REASONS})
    assert status == 200, asked
    first, outside = asked["predictions"]
    assert {k: first[k] for k in OUTPUT_COLUMNS} == plain["predictions"][0]
    assert abs(sum(first[c] for c in EXPLANATION_COLUMNS) - first["predicted_annual_charges"]) <= 1.0
    assert first["top_reasons"].startswith("smoker: +") and first["outside_training_range"] == ""
    assert outside["outside_training_range"] == "bmi" and outside["top_reasons"].startswith(f"{OUTSIDE_WORDS}: bmi")
    answer = ScoringServerScorer(server["url"]).score(SMOKER, reasons=True)    # the console's route
    assert answer["top_reasons"] == first["top_reasons"]
    plain_answer = ScoringServerScorer(server["url"]).score(SMOKER)
    assert set(plain_answer) == {*OUTPUT_COLUMNS, "model_version"} and plain_answer["model_version"] == "1"


def test_the_serving_endpoint_route_posts_the_reasons_parameter_through_the_sdk():
    """The real databricks-sdk client against a loopback stand-in for the workspace: the request it builds."""
    import http.server
    import json
    import threading

    from databricks.sdk import WorkspaceClient

    from healthcare_mlops.runtime.serving_endpoint_scorer import ServingEndpointScorer

    seen = []

    class Workspace(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802  (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            answer = json.dumps({"predictions": [{"predicted_annual_charges": 1.0, "top_reasons": "smoker: +1 USD"}],
                                 "served_model_name": "insurance_model-3"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Workspace)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = WorkspaceClient(host=f"http://127.0.0.1:{httpd.server_port}", token="test-token")
        answer = ServingEndpointScorer(lambda: client, "insurance-risk").score(SMOKER, reasons=True)
    finally:
        httpd.shutdown()
    assert (answer["top_reasons"], answer["model_version"]) == ("smoker: +1 USD", "insurance_model-3")
    assert seen == [("/serving-endpoints/insurance-risk/invocations",
                     {"dataframe_records": [SMOKER], "params": {"reasons": True}})]


def test_predictions_made_before_explanations_take_the_new_columns(settings):
    """A home scored before the contract gained the explanation columns keeps scoring (schema merge)."""
    import datetime as dt

    import pyarrow as pa

    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
    from healthcare_mlops.scoring.contract import PREDICTION_COLUMNS
    from healthcare_mlops.tables import ML_PATIENT_PREDICTIONS

    store = DeltaCatalog(settings)
    old = pa.table({"patient_natural_key": ["a"], "scoring_date": [dt.date(2026, 1, 1)],
                    "predicted_annual_charges": [5000.0]})
    store.write(old, ML_PATIENT_PREDICTIONS, mode="replace_partition", partition={"scoring_date": dt.date(2026, 1, 1)})
    new = old.set_column(1, "scoring_date", pa.array([dt.date(2026, 1, 2)])).append_column(
        "base_charges", pa.array([4000.0]))
    store.write(new, ML_PATIENT_PREDICTIONS, mode="replace_partition", partition={"scoring_date": dt.date(2026, 1, 2)})
    rows = store.read_arrow(ML_PATIENT_PREDICTIONS).to_pandas().sort_values("scoring_date")
    assert rows["base_charges"].isna().tolist() == [True, False]
    assert "base_charges" in PREDICTION_COLUMNS


@pytest.mark.parametrize("hostile", ["yes", "true; DROP", {"nested": True}, [True]])
def test_a_reasons_param_that_is_not_a_boolean_is_refused_naming_it(hostile):
    from healthcare_mlops.modeling.scoring_request import RequestRefused, resolve_params

    with pytest.raises(RequestRefused) as refused:
        resolve_params({"reasons": hostile})
    assert refused.value.errors[0]["field"] == "params.reasons"
    assert resolve_params({"reasons": True})["reasons"] is True and resolve_params(None)["reasons"] is False


def test_joining_words_keeps_rows_whose_texts_are_all_empty():
    import pyarrow as pa

    from healthcare_mlops.explanations.reasons import join_words

    codes = pa.array(["critical_risk", "", "low_confidence", "", None])
    top = pa.array(["smoker: +23,400 USD", "", "", None, "age 52: +100 USD"])
    assert join_words(codes, top).to_pylist() == ["critical_risk; smoker: +23,400 USD", "", "low_confidence", "",
                                                   "age 52: +100 USD"]
    assert join_words(pa.array(["", ""]), pa.array(["", ""])).to_pylist() == ["", ""]


def test_batch_scoring_explains_the_flagged_members_exactly_as_it_would_explain_all(linear):
    from healthcare_mlops.scoring import batch

    frame = _members(400, 21).assign(sex="female", age_band="x")
    rules = BusinessRules(ScoringThresholds(min_predicted_charges=3_000.0, review_interval_width_ratio=9.0),
                          training_range=TrainingRange.from_reference(linear.reference))
    everyone = batch.score_frame(frame, _model(linear), rules, explain=batch.EXPLAIN_ALL)
    flagged = batch.score_frame(frame, _model(linear), rules)
    review = flagged["requires_review"].to_numpy()
    assert 0 < review.sum() < len(flagged)
    pd.testing.assert_frame_equal(flagged[review], everyone[review])
    quiet = flagged[~review]
    assert quiet[[*EXPLANATION_COLUMNS, "top_reasons"]].isna().all().all() and (quiet["review_reasons"] == "").all()
    assert (everyone.loc[~review, "top_reasons"] != "").all()
    pd.testing.assert_frame_equal(quiet.drop(columns=list(batch.EXPLAINED)),
                                  everyone[~review].drop(columns=list(batch.EXPLAINED)))


@pytest.mark.slow          # trains a tree model
def test_a_tree_champions_batch_explanations_by_pattern_are_shaps_per_row_ones(monkeypatch):
    """Batch scoring of a tree champion explains flagged members tree by tree over split patterns
    (explanations/tree_patterns.py): the same table as shap's per-row pass, to rounding in the USD columns
    and exactly in the words, and the same for a flagged member whether or not everyone is explained."""
    from healthcare_mlops.explanations import tree_patterns
    from healthcare_mlops.scoring import batch

    result = train(_members(600, 5), seed=5, candidates=("hist_gradient_boosting_absolute_error",))
    frame = _members(1_500, 21).assign(sex="female", age_band="x")
    rules = BusinessRules(ScoringThresholds(min_predicted_charges=9_000.0, review_interval_width_ratio=9.0),
                          training_range=TrainingRange.from_reference(result.reference))
    flagged = batch.score_frame(frame, _model(result), rules)
    review = flagged["requires_review"].to_numpy()
    assert tree_patterns.PATTERN_MIN_ROWS <= review.sum() < len(flagged)
    everyone = batch.score_frame(frame, _model(result), rules, explain=batch.EXPLAIN_ALL)
    pd.testing.assert_frame_equal(flagged[review], everyone[review])
    monkeypatch.setattr(tree_patterns, "PATTERN_MIN_ROWS", len(frame) + 1)          # shap's per-row pass
    per_row = batch.score_frame(frame, _model(result), rules)
    usd = list(EXPLANATION_COLUMNS)
    pd.testing.assert_frame_equal(flagged.drop(columns=usd), per_row.drop(columns=usd))
    np.testing.assert_allclose(flagged.loc[review, usd].to_numpy(float), per_row.loc[review, usd].to_numpy(float),
                               rtol=1e-9, atol=1e-6)
