"""Model training: definitions, selection, intervals, the pyfunc contract, registration, bad input."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from sklearn.metrics import mean_absolute_error, r2_score

from healthcare_mlops.composition import build_runtime
from healthcare_mlops.data.population import Shape
from healthcare_mlops.errors import UserError
from healthcare_mlops.features.definitions import AGE_BANDS, band
from healthcare_mlops.modeling import metrics as m
from healthcare_mlops.modeling.estimators import make_pipeline
from healthcare_mlops.modeling.pyfunc import OUTPUT_COLUMNS
from healthcare_mlops.modeling.risk import RISK_CATEGORIES, reference_quantiles, risk_category, risk_score
from healthcare_mlops.features.definitions import MODEL_INPUT_COLUMNS
from healthcare_mlops.modeling.splits import DEFAULT_SALT, fold_ids, held_out_mask, sample_mask
from healthcare_mlops.modeling.training import (FOLDS, LEARNING_CURVE_SHARES, MIN_LABELLED_ROWS, R2_TOLERANCE,
                                                TRAINING_THREADS, cross_validate, select_candidate, train,
                                                training_pool)
from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
from healthcare_mlops.tasks.model_training import CHALLENGER, log_and_register, model_requirements

FAST = ("linear_huber",)          # the fastest candidate, and the one usually selected


@pytest.fixture(scope="module")
def members(spark) -> pd.DataFrame:
    """3,000 generated members with labels, as the features table holds them."""
    from healthcare_mlops.spark.generator import generate_load

    frame = generate_load(spark, 5, dt.date(2026, 1, 1), 3000, Shape()).toPandas()
    frame = frame[frame["annual_charges"].notna()].reset_index(drop=True)
    frame["age_band"] = band(frame["age"], AGE_BANDS)
    return frame


@pytest.fixture(scope="module")
def trained(members):
    return train(members, seed=7, candidates=FAST)


def test_risk_categories_on_the_reference_population_are_50_30_15_5():
    reference = np.random.default_rng(0).lognormal(9, 0.8, 50_000)
    shares = pd.Series(risk_category(risk_score(reference, reference_quantiles(reference)))).value_counts(
        normalize=True)
    expected = {"low": 0.50, "medium": 0.30, "high": 0.15, "critical": 0.05}
    for category, share in expected.items():
        assert shares[category] == pytest.approx(share, abs=0.01)


@pytest.mark.parametrize("score,category", [(0, "low"), (49.99, "low"), (50, "medium"), (79.99, "medium"),
                                            (80, "high"), (94.99, "high"), (95, "critical"), (100, "critical")])
def test_risk_category_boundaries(score, category):
    assert risk_category([score])[0] == category
    assert [label for _, label in RISK_CATEGORIES] == ["low", "medium", "high", "critical"]


def test_metrics_agree_with_sklearn():
    rng = np.random.default_rng(1)
    actual = rng.lognormal(9, 1, 500)
    predicted = actual * rng.normal(1, 0.2, 500)
    assert m.r2(actual, predicted) == pytest.approx(r2_score(actual, predicted), abs=1e-12)
    assert m.mae(actual, predicted) == pytest.approx(mean_absolute_error(actual, predicted), abs=1e-9)
    assert m.high_risk_capture(actual, actual) == 1.0
    assert m.high_risk_capture(actual, -actual) == 0.0


def test_training_meets_the_governance_floor_on_generated_data(trained):
    metrics = trained.metrics
    assert set(metrics) == {"cv_r2", "cv_mae", "cv_risk_score_mae", "cv_high_risk_capture", "cv_calibration",
                            "cv_interval_coverage", "cv_interval_width_ratio", "test_r2", "test_mae", "test_rmse",
                            "test_risk_score_mae", "test_high_risk_capture", "test_interval_coverage",
                            "test_interval_width_ratio"}
    assert metrics["test_r2"] >= 0.70
    assert metrics["test_risk_score_mae"] <= 15.0
    assert metrics["test_high_risk_capture"] >= 0.60


def test_intervals_cover_about_90_percent_and_adapt_to_smokers(trained):
    test = trained.test_frame
    coverage = m.interval_coverage(test["annual_charges"], test["interval_lower"], test["interval_upper"])
    assert 0.85 <= coverage <= 0.95
    width = test["interval_upper"] - test["interval_lower"]
    assert width[test["smoker"]].mean() > 1.5 * width[~test["smoker"]].mean()
    assert trained.metrics["test_interval_width_ratio"] < 1.0
    assert 0.87 <= trained.metrics["cv_interval_coverage"] <= 0.93
    assert trained.metrics["cv_interval_width_ratio"] <= 0.85


def test_mondrian_intervals_cover_each_group_at_the_level():
    from healthcare_mlops.modeling.intervals import calibrate_intervals

    rng = np.random.default_rng(4)
    smoker = rng.random(4000) < 0.2
    residual = rng.normal(0, np.where(smoker, 3000, 500))
    inputs = pd.DataFrame({"smoker": smoker})
    intervals = calibrate_intervals(inputs, residual, np.zeros(4000), 0.9)
    assert intervals.half_widths["true"] > 4 * intervals.half_widths["false"]
    fresh = rng.normal(0, np.where(smoker, 3000, 500))
    lower, upper = intervals.bounds(inputs, np.full(4000, 10_000.0))
    covered = np.abs(fresh) <= (upper - lower) / 2
    assert 0.87 <= covered[smoker].mean() <= 0.93 and 0.87 <= covered[~smoker].mean() <= 0.93

def test_selection_follows_the_rule_and_does_not_depend_on_row_order(members):
    pair = ("hist_gradient_boosting_absolute_error", "linear_huber")
    first = train(members, seed=3, candidates=pair)
    shuffled = members.sample(frac=1.0, random_state=11).reset_index(drop=True)
    second = train(shuffled, seed=3, candidates=pair)
    assert first.candidate == second.candidate
    assert first.cv_results == second.cv_results
    assert first.metrics == second.metrics
    best_r2 = max(v["cv_r2"] for v in first.cv_results.values())
    eligible = {n: v for n, v in first.cv_results.items() if v["cv_r2"] >= best_r2 - R2_TOLERANCE}
    assert first.candidate == min(eligible, key=lambda name: eligible[name]["cv_mae"])
    assert first.params["split_salt"] == DEFAULT_SALT


def test_one_and_two_workers_give_the_same_model_and_report_progress(members):
    pair = ("hist_gradient_boosting_absolute_error", "linear_huber")
    lines: list[str] = []
    one = train(members, seed=3, candidates=pair, workers=1)
    two = train(members, seed=3, candidates=pair, workers=2, emit=lines.append)
    assert one.candidate == two.candidate and one.cv_results == two.cv_results
    assert one.metrics == two.metrics and one.learning_curve == two.learning_curve
    rows = members[list(MODEL_INPUT_COLUMNS)]
    assert (one.pipeline.predict(rows) == two.pipeline.predict(rows)).all()
    # a line per fold of each candidate, at each learning-curve size, with elapsed time and what is left
    folds = [line for line in lines if " fold " in line]
    assert len(folds) == len(pair) * FOLDS * len({p["rows"] for p in one.learning_curve})
    assert all(re.search(r"elapsed \d+\.\d s, about \d+ s left$", line) for line in folds)
    assert lines[-1].startswith("[training] ") and "fitting it on all" in lines[-1]


def test_candidates_are_compared_on_a_capped_member_sample_and_the_winner_fitted_on_all(members):
    pair = ("hist_gradient_boosting_absolute_error", "linear_huber")
    capped = train(members, seed=3, candidates=pair, selection_cap=1600)
    full = train(members, seed=3, candidates=pair, selection_cap=None)
    train_rows = capped.params["train_rows"]
    assert capped.params["selection_rows"] == 1600 and capped.params["selection_cap"] == 1600
    assert full.params["selection_rows"] == train_rows and full.params["selection_cap"] == "none"
    # the curve: every candidate at each nested size below the cap, then at the cap
    sizes = sorted({p["rows"] for p in capped.learning_curve})
    assert sizes == [int(1600 * share) for share in LEARNING_CURVE_SHARES if 1600 * share >= MIN_LABELLED_ROWS] + [1600]
    assert len(sizes) == 4
    assert {p["candidate"] for p in capped.learning_curve} == set(pair)
    at_cap = {p["candidate"]: p["cv_mae"] for p in capped.learning_curve if p["rows"] == 1600}
    assert at_cap == {name: r["cv_mae"] for name, r in capped.cv_results.items()}
    # the winner's own CV runs on every training row: the same OOF evidence as the full comparison's
    assert len(capped.oof_evidence) == train_rows
    if capped.candidate == full.candidate:
        assert capped.metrics == full.metrics
    assert capped.cv_results != full.cv_results           # the comparison itself ran on fewer rows


def _openmp_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [library["num_threads"] for library in threadpool_info() if library["user_api"] == "openmp"]


def test_the_fold_threads_run_on_the_training_thread_count_as_the_main_thread_does():
    """OpenMP's thread count is per thread: without the pool's own pin, a fold's histogram boosting
    ran on every core (floats that follow the core count; minutes on a busy machine)."""
    from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: F401  (loads scikit-learn's OpenMP)

    with training_pool(2) as pool:
        in_pool = [pool.submit(_openmp_threads).result() for _ in range(4)]
    assert all(threads and set(threads) == {TRAINING_THREADS} for threads in in_pool), in_pool


def test_cross_validation_in_the_pool_equals_fits_on_the_pinned_main_thread():
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(4)
    n = 1000
    x = pd.DataFrame({"age": rng.integers(18, 65, n), "bmi": rng.normal(30, 6, n).round(2),
                      "children": rng.integers(0, 5, n), "smoker": rng.random(n) < 0.2,
                      "region": rng.choice(["northeast", "northwest", "southeast", "southwest"], n)})
    y = (2500 + 260 * x["age"] + np.where(x["smoker"], 24000, 0) + rng.gamma(2, 800, n)).to_numpy()
    folds = rng.integers(0, FOLDS, n)
    name = "hist_gradient_boosting_absolute_error"
    _, pooled = cross_validate((name,), x, y, folds, seed=3, workers=2)
    expected = np.zeros(n)
    with threadpool_limits(TRAINING_THREADS):
        for k in range(FOLDS):
            held = folds == k
            expected[held] = make_pipeline(name, 3).fit(x[~held], y[~held]).predict(x[held])
    assert np.array_equal(pooled[name], np.maximum(expected, 0.0))


def test_the_selection_sample_is_nested_and_stable_when_members_are_added():
    keys = np.array([f"member-{i}" for i in range(3000)])
    small, large = sample_mask(keys, "salt", 500), sample_mask(keys, "salt", 1500)
    assert small.sum() == 500 and large.sum() == 1500 and not (small & ~large).any()
    assert sample_mask(keys, "salt", 5000).all()
    assert (sample_mask(keys, "other", 500) != small).any()


def test_select_candidate_prefers_lower_mae_within_the_r2_tolerance():
    results = {"a": {"cv_r2": 0.860, "cv_mae": 2400.0}, "b": {"cv_r2": 0.853, "cv_mae": 1700.0},
               "c": {"cv_r2": 0.830, "cv_mae": 1500.0}}
    assert select_candidate(results) == "b"          # c has the lowest MAE but is 0.03 below on R2


def test_members_keep_their_split_and_fold_when_members_are_added():
    keys = [f"member-{i}" for i in range(5000)]
    more = keys + [f"member-{i}" for i in range(5000, 7000)]
    assert (held_out_mask(keys, "salt", 0.2) == held_out_mask(more, "salt", 0.2)[:5000]).all()
    assert (fold_ids(keys, "salt", 5) == fold_ids(more, "salt", 5)[:5000]).all()
    assert 0.18 <= held_out_mask(keys, "salt", 0.2).mean() <= 0.22
    assert set(np.bincount(fold_ids(keys, "salt", 5)) // 100) <= {9, 10}
    assert (held_out_mask(keys, "other salt", 0.2) != held_out_mask(keys, "salt", 0.2)).any()


def test_reference_holds_what_monitoring_needs(trained):
    reference = trained.reference
    assert set(reference["numeric"]) == {"age", "bmi", "children"}
    assert len(reference["numeric"]["bmi"]["deciles"]) == 11
    assert sum(reference["categorical"]["region"].values()) == pytest.approx(1.0)
    assert sum(reference["feature_importances"].values()) == pytest.approx(1.0)
    assert reference["feature_importances"]["smoker"] == max(reference["feature_importances"].values())


def test_registered_version_has_alias_challenger_and_the_output_contract(settings, trained):
    summary = log_and_register(build_runtime(settings), trained,
                               {"table": "t", "as_of_date": "2026-01-01", "delta_version": 3}, commit="0123abc")
    client = configure_mlflow(settings)
    version = client.get_model_version_by_alias(settings.model_name, CHALLENGER)
    assert str(version.version) == summary["version"]
    assert version.tags["git_commit"] == "0123abc"
    assert '"delta_version": 3' in version.tags["training_data_version"]
    run = client.get_run(summary["run_id"])
    assert run.data.metrics["test_r2"] == pytest.approx(trained.metrics["test_r2"])
    assert any(key.startswith("oof_mae_age_band_") for key in run.data.metrics)
    assert run.data.params["split_salt"] == DEFAULT_SALT

    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHALLENGER}")
    members = pd.DataFrame([{"age": 19, "bmi": 22.0, "children": 0, "smoker": False, "region": "northwest"},
                            {"age": 60, "bmi": 38.0, "children": 3, "smoker": True, "region": "southeast"}])
    output = model.predict(members)
    assert tuple(output.columns) == OUTPUT_COLUMNS
    assert (output["interval_lower"] <= output["predicted_annual_charges"]).all()
    assert (output["predicted_annual_charges"] <= output["interval_upper"]).all()
    assert output["risk_score"].between(0, 100).all()
    assert output.loc[1, "predicted_annual_charges"] > 3 * output.loc[0, "predicted_annual_charges"]
    assert output.loc[1, "risk_category"] == "critical"
    with pytest.raises(MlflowException, match="age: outside 18-100"):
        model.predict(members.assign(age=[140, 30]))
    with pytest.raises(MlflowException, match="region"):
        model.predict(members.assign(region=["mars", "southeast"]))
    _assert_requirements_are_stated_and_complete(f"models:/{settings.model_name}@{CHALLENGER}")


def _assert_requirements_are_stated_and_complete(model_uri: str) -> None:
    """The logged requirements are the stated list (installable: without this package, which the
    model carries), and MLflow's own inference (the model loaded in a new process) finds nothing else."""
    from mlflow.utils.environment import infer_pip_requirements

    local = mlflow.artifacts.download_artifacts(model_uri)
    logged = (Path(local) / "requirements.txt").read_text().split()
    assert logged == model_requirements(explained_by_tree=False)
    assert not any(line.startswith("healthcare-mlops") for line in logged)
    inferred = {line.split("==")[0] for line in infer_pip_requirements(local, "python_function")}
    assert inferred - {"healthcare-mlops"} <= {line.split("==")[0] for line in logged}, inferred


def test_a_tree_model_s_requirements_add_shap_and_every_one_is_pinned_to_what_is_installed():
    from importlib.metadata import version

    linear, tree = model_requirements(explained_by_tree=False), model_requirements(explained_by_tree=True)
    assert tree == [*linear, f"shap=={version('shap')}"]
    assert f"scikit-learn=={version('scikit-learn')}" in linear and f"cloudpickle=={version('cloudpickle')}" in linear


@pytest.mark.parametrize("breakage,message", [
    (lambda f: f.head(MIN_LABELLED_ROWS - 1), "at least 200 labelled rows"),
    (lambda f: f.assign(annual_charges=np.where(f.index < 250, np.nan, f["annual_charges"])).head(400),
     "at least 200 labelled rows"),
    (lambda f: f.drop(columns=["bmi"]), "missing columns: bmi"),
    (lambda f: f.assign(region="southeast"), "constant"),
    (lambda f: f.assign(annual_charges=-f["annual_charges"]), "negative"),
])
def test_bad_training_data_stops_with_a_clear_message_and_registers_nothing(settings, members, breakage, message):
    with pytest.raises(UserError, match=message):
        train(breakage(members), seed=1, candidates=FAST)
    client = configure_mlflow(settings)
    assert client.search_registered_models() == []


def test_job_logs_carry_no_cloudpickle_notice_but_other_mlflow_warnings(caplog):
    import logging

    from healthcare_mlops.tasks.model_training import CLOUDPICKLE_NOTICE, quiet_cloudpickle_notice

    quiet_cloudpickle_notice()
    quiet_cloudpickle_notice()                      # once per process, however often training runs
    logger = logging.getLogger("mlflow.pyfunc")
    with caplog.at_level(logging.WARNING, logger="mlflow.pyfunc"):
        logger.warning(f"{CLOUDPICKLE_NOTICE} causes it to be serialized using CloudPickle")
        logger.warning("Validating input example against model signature failed")
    assert [r.getMessage() for r in caplog.records] == ["Validating input example against model signature failed"]
    assert len(logger.filters) == 1


def test_the_model_card_shows_the_learning_curve_it_was_logged_with():
    from healthcare_mlops.governance.model_card import learning_curve_section
    from healthcare_mlops.modeling.training import learning_curve_metrics

    curve = [{"rows": rows, "candidate": name, "cv_mae": mae, "cv_r2": 0.8}
             for rows, name, mae in ((2500, "linear_huber", 1610.0), (2500, "random_forest", 1702.4),
                                     (20000, "linear_huber", 1530.0), (20000, "random_forest", 1650.0))]
    section = learning_curve_section({"candidate": "linear_huber", "selection_rows": "20000",
                                      "selection_cap": "20000"}, learning_curve_metrics(curve))
    assert "| `linear_huber` (chosen) | $1,610 | $1,530 |" in section
    assert "| `random_forest` | $1,702 | $1,650 |" in section
    assert "2,500 rows | 20,000 rows" in section
    assert "No learning curve" in learning_curve_section({}, {"cv_mae": 1.0})
