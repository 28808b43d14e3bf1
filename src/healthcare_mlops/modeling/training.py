"""Model training as a pure function: a labelled features frame in, a trained model and its evidence out.

Candidates are compared by 5-fold cross-validated MAE on the training split; the
winner is refit on the whole training split and judged once on the held-out test
split. Out-of-fold predictions are also the reference distribution of the risk score
(predictions for members the model did not fit) and calibrate the intervals.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.model_selection import KFold, cross_val_predict, train_test_split
from threadpoolctl import threadpool_limits

from healthcare_mlops.errors import UserError
from healthcare_mlops.features.definitions import LABEL_COLUMN, MODEL_INPUT_COLUMNS, engineer_features
from healthcare_mlops.modeling import metrics as m
from healthcare_mlops.modeling.estimators import CANDIDATES, make_pipeline
from healthcare_mlops.modeling.intervals import AdaptiveIntervals, calibrate_intervals
from healthcare_mlops.modeling.pyfunc import score
from healthcare_mlops.modeling.risk import reference_quantiles

MIN_LABELLED_ROWS = 200
INTERVAL_COVERAGE = 0.90
TEST_SHARE = 0.2
FOLDS = 5
REPORTING_GROUPS = ("sex", "region", "age_band")
REFERENCE_SAMPLE_ROWS = 100_000
NUMERIC_INPUTS = ("age", "bmi", "children")
CATEGORICAL_INPUTS = ("smoker", "region")


@dataclass
class TrainingResult:
    candidate: str
    pipeline: object
    intervals: AdaptiveIntervals
    prediction_reference: np.ndarray
    actual_reference: np.ndarray
    cv_results: dict
    metrics: dict
    group_metrics: list
    test_frame: pd.DataFrame
    reference: dict
    reference_sample: pd.DataFrame
    params: dict = field(default_factory=dict)


def check_training_frame(frame: pd.DataFrame, inputs=MODEL_INPUT_COLUMNS) -> pd.DataFrame:
    """The labelled rows, or a UserError that says why the data cannot train a model."""
    missing = [c for c in (*inputs, LABEL_COLUMN) if c not in frame.columns]
    if missing:
        raise UserError(f"training data is missing columns: {', '.join(missing)}")
    labelled = frame[frame[LABEL_COLUMN].notna()]
    if len(labelled) < MIN_LABELLED_ROWS:
        raise UserError(f"training needs at least {MIN_LABELLED_ROWS} labelled rows, found {len(labelled)}")
    if (labelled[LABEL_COLUMN] < 0).any():
        count = int((labelled[LABEL_COLUMN] < 0).sum())
        raise UserError(f"{count} labels ({LABEL_COLUMN}) are negative")
    constant = [c for c in inputs if labelled[c].nunique(dropna=False) < 2]
    if constant:
        raise UserError(f"feature columns are constant (nothing to learn from): {', '.join(constant)}")
    return labelled.reset_index(drop=True)


def metric_key(*parts: str) -> str:
    """An MLflow-safe metric name from its parts (``test_mae``, ``age_band``, ``60+`` -> ``..._60plus``)."""
    return "_".join(re.sub(r"[^A-Za-z0-9_]+", "", str(p).replace("+", "plus")) for p in parts)


def group_metrics(test: pd.DataFrame, groups=REPORTING_GROUPS) -> list[dict]:
    """MAE, mean predicted / mean actual and size per group of the test split."""
    rows = []
    for column in groups:
        for value, part in test.groupby(column, observed=True):
            rows.append({
                "group_column": column, "group_value": str(value), "n": int(len(part)),
                "mae": m.mae(part[LABEL_COLUMN], part["predicted_annual_charges"]),
                "calibration_ratio": float(part["predicted_annual_charges"].mean() / part[LABEL_COLUMN].mean()),
                "critical_share": float((part["risk_category"] == "critical").mean()),
            })
    return rows


def training_reference(train: pd.DataFrame, predictions: np.ndarray, importances: dict) -> dict:
    """What monitoring compares a scored batch with: deciles, category shares, importances."""
    reference = {"numeric": {}, "categorical": {}, "feature_importances": importances,
                 "prediction": {}, "rows": int(len(train))}
    for column in NUMERIC_INPUTS:
        values = train[column].astype(float)
        reference["numeric"][column] = {
            "deciles": np.percentile(values, np.linspace(0, 100, 11)).tolist(),
            "mean": float(values.mean()), "std": float(values.std(ddof=0)),
            "min": float(values.min()), "max": float(values.max())}
    for column in (*CATEGORICAL_INPUTS, "sex", "age_band"):
        if column in train.columns:
            shares = train[column].astype(str).str.lower().value_counts(normalize=True)
            reference["categorical"][column] = {str(k): float(v) for k, v in shares.items()}
    reference["prediction"] = {
        "deciles": np.percentile(predictions, np.linspace(0, 100, 11)).tolist(),
        "mean": float(np.mean(predictions)), "std": float(np.std(predictions))}
    return reference


def _permutation_importances(pipeline, inputs: pd.DataFrame, actual: np.ndarray, seed: int) -> dict:
    result = permutation_importance(pipeline, inputs, actual, scoring="neg_mean_absolute_error",
                                    n_repeats=3, random_state=seed)
    raw = np.clip(result.importances_mean, 0.0, None)
    total = raw.sum()
    weights = raw / total if total > 0 else np.full(len(raw), 1.0 / len(raw))
    return {column: float(w) for column, w in zip(inputs.columns, weights)}


def calibration_range(frame: pd.DataFrame, predicted: np.ndarray, groups=REPORTING_GROUPS) -> tuple[float, float]:
    """Lowest and highest mean predicted / mean actual over the reporting groups."""
    scored = frame.assign(_predicted=predicted)
    ratios = [part["_predicted"].mean() / part[LABEL_COLUMN].mean()
              for column in groups if column in scored.columns
              for _, part in scored.groupby(column, observed=True)]
    return float(min(ratios)), float(max(ratios))


def train(frame: pd.DataFrame, seed: int = 42, candidates=tuple(CANDIDATES),
          inputs=MODEL_INPUT_COLUMNS, calibration_band: tuple[float, float] = (0.9, 1.1)) -> TrainingResult:
    """Select, fit and evaluate the model on a features frame (labelled rows are used).

    The winner has the lowest CV MAE among the candidates whose out-of-fold predictions
    are calibrated in every reporting group (mean predicted / mean actual inside
    ``calibration_band``, the governance band); if none is, the lowest CV MAE overall.
    """
    labelled = check_training_frame(frame, inputs)
    # One BLAS/OpenMP thread per core pair: on a small machine Spark and other jobs share
    # the cores, and oversubscribed OpenMP spins (seen 10x slower on 2 cores).
    limiter = threadpool_limits(max(1, (os.cpu_count() or 2) // 2))
    if "age_band" not in labelled.columns:
        labelled = labelled.assign(age_band=engineer_features(labelled)["age_risk_score"].astype(int).astype(str))
    train_rows, test_rows = train_test_split(labelled, test_size=TEST_SHARE, random_state=seed)
    x_train, y_train = train_rows[list(inputs)], train_rows[LABEL_COLUMN].to_numpy(float)
    x_test, y_test = test_rows[list(inputs)], test_rows[LABEL_COLUMN].to_numpy(float)
    folds = KFold(n_splits=FOLDS, shuffle=True, random_state=seed)

    cv_results, out_of_fold = {}, {}
    extra = tuple(c for c in inputs if c not in MODEL_INPUT_COLUMNS)
    for name in candidates:
        oof = cross_val_predict(make_pipeline(name, seed, extra), x_train, y_train, cv=folds)
        out_of_fold[name] = oof
        low, high = calibration_range(train_rows, oof)
        cv_results[name] = {"cv_mae": m.mae(y_train, oof), "cv_r2": m.r2(y_train, oof),
                            "cv_calibration_min": low, "cv_calibration_max": high}
    calibrated = [name for name in candidates
                  if calibration_band[0] <= cv_results[name]["cv_calibration_min"]
                  and cv_results[name]["cv_calibration_max"] <= calibration_band[1]]
    best = min(calibrated or candidates, key=lambda name: (round(cv_results[name]["cv_mae"], 6), name))

    pipeline = make_pipeline(best, seed, extra).fit(x_train, y_train)
    oof = np.maximum(out_of_fold[best], 0.0)
    prediction_reference = reference_quantiles(oof)
    actual_reference = reference_quantiles(y_train)
    intervals = calibrate_intervals(x_train, y_train, oof, INTERVAL_COVERAGE, seed, extra)

    scored = score(pipeline, intervals, prediction_reference, x_test)
    test_frame = pd.concat([test_rows.reset_index(drop=True), scored.reset_index(drop=True)], axis=1)
    predicted = scored["predicted_annual_charges"].to_numpy()
    width = m.mean_width(scored["interval_lower"], scored["interval_upper"])
    metrics = {
        "cv_mae": cv_results[best]["cv_mae"], "cv_r2": cv_results[best]["cv_r2"],
        "test_r2": m.r2(y_test, predicted),
        "test_mae": m.mae(y_test, predicted),
        "test_rmse": m.rmse(y_test, predicted),
        "test_risk_score_mae": m.risk_score_mae(y_test, predicted, prediction_reference, actual_reference),
        "test_high_risk_capture": m.high_risk_capture(y_test, predicted),
        "test_interval_coverage": m.interval_coverage(y_test, scored["interval_lower"], scored["interval_upper"]),
        "test_interval_width_ratio": width / (2.0 * intervals.constant_half_width),
    }
    groups = group_metrics(test_frame, [g for g in REPORTING_GROUPS if g in test_frame.columns])
    importances = _permutation_importances(pipeline, x_test, y_test, seed)
    sample = train_rows.assign(predicted_annual_charges=oof)
    sample = sample.sample(n=min(len(sample), REFERENCE_SAMPLE_ROWS), random_state=seed)
    limiter.restore_original_limits()
    return TrainingResult(
        candidate=best, pipeline=pipeline, intervals=intervals,
        prediction_reference=prediction_reference, actual_reference=actual_reference,
        cv_results=cv_results, metrics=metrics, group_metrics=groups, test_frame=test_frame,
        reference=training_reference(train_rows, oof, importances),
        reference_sample=sample[[c for c in dict.fromkeys((*inputs, "sex", "age_band", "predicted_annual_charges"))
                                 if c in sample.columns]].reset_index(drop=True),
        params={"candidate": best, "seed": seed, "folds": FOLDS, "test_share": TEST_SHARE,
                "interval_coverage": INTERVAL_COVERAGE, "train_rows": len(train_rows),
                "test_rows": len(test_rows), "inputs": ",".join(inputs),
                "candidates": ",".join(candidates)})

