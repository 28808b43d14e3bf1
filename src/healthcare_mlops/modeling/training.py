"""Model training as a pure function: a labelled features frame in, a trained model and its evidence out.

Members are assigned to the held-out test split and to the 5 cross-validation folds by a
salted hash of their member key (``splits.py``), never by row order. Candidates are
compared by their out-of-fold (OOF) predictions on the training split. Selection rule:
among the candidates whose CV R2 is within ``R2_TOLERANCE`` (0.01) of the best CV R2, the
lowest CV MAE wins (ties: by name). R2 guards the ranking of costly members and MAE the
typical dollar error, the two things governance judges. The winner is refit on the whole
training split and judged once on the held-out test split. Its OOF predictions are the
reference distribution of the risk score, calibrate the intervals, and are the evidence
governance's group checks judge (every training member, group columns only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import PredefinedSplit, cross_val_predict
from threadpoolctl import threadpool_limits

from healthcare_mlops.errors import UserError
from healthcare_mlops.explanations.contributions import Explainer, build_explainer, mean_abs_contributions, normalised
from healthcare_mlops.features.definitions import (CARRIED_GROUP_COLUMNS, FAIRNESS_GROUP_COLUMNS, LABEL_COLUMN,
                                                   MODEL_INPUT_COLUMNS, WINDOW_FAIRNESS_GROUPS, engineer_features)
from healthcare_mlops.features.training_range import TrainingRange
from healthcare_mlops.governance.group_evidence import CRITICAL as CRITICAL_FLAG
from healthcare_mlops.modeling import metrics as m
from healthcare_mlops.modeling.estimators import CANDIDATES, make_pipeline
from healthcare_mlops.modeling.intervals import (AdaptiveIntervals, calibrate_intervals,
                                                cross_validated_interval_quality)
from healthcare_mlops.modeling.pyfunc import score
from healthcare_mlops.modeling.risk import HIGH_RISK_CATEGORY, reference_quantiles, risk_category, risk_score
from healthcare_mlops.modeling.splits import DEFAULT_SALT, MEMBER_KEY, fold_ids, held_out_mask, member_keys

MIN_LABELLED_ROWS = 200
INTERVAL_COVERAGE = 0.90
TEST_SHARE = 0.2
FOLDS = 5
R2_TOLERANCE = 0.01
TRAINING_THREADS = 1
REPORTING_GROUPS = WINDOW_FAIRNESS_GROUPS
PREDICTED_COLUMN = "predicted_annual_charges"
# The OOF evidence governance judges: group columns, actual, predicted, critical flag; no
# member key, zip, exact age or name. Rows in memory only: MLflow gets their bootstrap sums
# per group (governance/group_evidence.py).
EVIDENCE_COLUMNS = (*FAIRNESS_GROUP_COLUMNS, LABEL_COLUMN, PREDICTED_COLUMN, CRITICAL_FLAG)
REFERENCE_SAMPLE_ROWS = 100_000
# The global importance in the training reference: mean |contribution| in USD per input
# (explanations/contributions.py); ``feature_importances`` is the same, normalised to sum to 1.
IMPORTANCE_KEY = "contribution_importance_usd"
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
    oof_evidence: pd.DataFrame
    reference: dict
    reference_sample: pd.DataFrame
    explainer: Explainer | None = None
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


def group_metrics(frame: pd.DataFrame, groups=REPORTING_GROUPS) -> list[dict]:
    """Size, MAE, MAE / mean actual, mean predicted / mean actual and share critical per group.

    ``frame`` holds actual and predicted charges and either a ``critical`` flag or a
    ``risk_category`` (the OOF evidence, or a re-scored batch)."""
    critical = frame[CRITICAL_FLAG] if CRITICAL_FLAG in frame.columns else frame["risk_category"] == HIGH_RISK_CATEGORY
    scored = frame.assign(_critical=critical.astype(bool))
    rows = []
    for column in groups:
        for value, part in scored.groupby(column, observed=True):
            actual, predicted = part[LABEL_COLUMN], part[PREDICTED_COLUMN]
            rows.append({
                "group_column": column, "group_value": str(value).lower(), "n": int(len(part)),
                "mae": m.mae(actual, predicted), "relative_mae": m.mae(actual, predicted) / float(actual.mean()),
                "calibration_ratio": float(predicted.mean() / actual.mean()),
                "critical_share": float(part["_critical"].mean()),
            })
    return rows


def training_reference(train: pd.DataFrame, predictions: np.ndarray, importances: dict) -> dict:
    """What monitoring compares a scored batch with: deciles, category shares, importances (normalised:
    the composite drift score's weights)."""
    reference = {"numeric": {}, "categorical": {}, "feature_importances": importances,
                 "prediction": {}, "rows": int(len(train))}
    for column in NUMERIC_INPUTS:
        values = train[column].astype(float)
        reference["numeric"][column] = {
            "deciles": np.percentile(values, np.linspace(0, 100, 11)).tolist(),
            "mean": float(values.mean()), "std": float(values.std(ddof=0)),
            "min": float(values.min()), "max": float(values.max())}
    for column in (*CATEGORICAL_INPUTS, *CARRIED_GROUP_COLUMNS):
        if column in train.columns:
            shares = train[column].astype(str).str.lower().value_counts(normalize=True)
            reference["categorical"][column] = {str(k): float(v) for k, v in shares.items()}
    reference["prediction"] = {
        "deciles": np.percentile(predictions, np.linspace(0, 100, 11)).tolist(),
        "mean": float(np.mean(predictions)), "std": float(np.std(predictions))}
    return reference


def explain_model(pipeline, candidate: str, train_rows: pd.DataFrame, inputs, seed: int) -> tuple[Explainer, dict]:
    """The model's explainer and its global importance: mean |contribution| in USD per input over the
    training frame (``IMPORTANCE_KEY`` in the reference; normalised, the monitoring weights)."""
    explainer = build_explainer(pipeline, candidate, inputs=tuple(inputs))
    return explainer, mean_abs_contributions(explainer, pipeline, train_rows[list(inputs)], seed)


def with_derived_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with ``age_band`` and ``family_size_category`` (the feature job's), when missing."""
    engineered = None
    if "age_band" not in frame.columns or "family_size_category" not in frame.columns:
        from healthcare_mlops.features.definitions import AGE_BANDS, band
        engineered = engineer_features(frame)
        frame = frame.assign(**({} if "age_band" in frame.columns else {"age_band": band(frame["age"], AGE_BANDS)}),
                             **({} if "family_size_category" in frame.columns
                                else {"family_size_category": engineered["family_size_category"]}))
    return frame


def split_by_member(labelled: pd.DataFrame, salt: str) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Training rows, held-out test rows and each training row's fold, all from the member-key hash.

    Rows are first sorted by member key, so the fitted models do not depend on the order
    in which the rows arrived either."""
    keys = member_keys(labelled)
    ordered = labelled.assign(_key=keys.to_numpy()).sort_values("_key", kind="stable").drop(columns="_key")
    held_out = held_out_mask(member_keys(ordered), salt, TEST_SHARE)
    train_rows = ordered[~held_out].reset_index(drop=True)
    test_rows = ordered[held_out].reset_index(drop=True)
    return train_rows, test_rows, fold_ids(member_keys(train_rows), salt, FOLDS)


def select_candidate(cv_results: dict) -> str:
    """Lowest CV MAE among the candidates within R2_TOLERANCE of the best CV R2 (ties: by name)."""
    best_r2 = max(values["cv_r2"] for values in cv_results.values())
    eligible = [name for name, values in cv_results.items() if values["cv_r2"] >= best_r2 - R2_TOLERANCE]
    return min(eligible, key=lambda name: (round(cv_results[name]["cv_mae"], 6), name))


def oof_evidence(train_rows: pd.DataFrame, oof: np.ndarray, prediction_reference: np.ndarray) -> pd.DataFrame:
    """Every training member's group columns, actual and out-of-fold predicted charges."""
    critical = risk_category(risk_score(oof, prediction_reference)) == HIGH_RISK_CATEGORY
    frame = train_rows.assign(**{PREDICTED_COLUMN: oof, CRITICAL_FLAG: critical})
    return frame[[c for c in EVIDENCE_COLUMNS if c in frame.columns]].reset_index(drop=True)


def _cross_validate(candidates, x_train, y_train, folds: np.ndarray, seed: int, extra: tuple):
    """OOF predictions and CV metrics per candidate (folds fixed by the member hash)."""
    cv_results, out_of_fold = {}, {}
    for name in candidates:
        oof = cross_val_predict(make_pipeline(name, seed, extra), x_train, y_train, cv=PredefinedSplit(folds))
        out_of_fold[name] = np.maximum(oof, 0.0)
        cv_results[name] = {"cv_mae": m.mae(y_train, oof), "cv_r2": m.r2(y_train, oof),
                            "cv_calibration": float(np.mean(oof) / np.mean(y_train))}
    return cv_results, out_of_fold


def _test_metrics(y_test: np.ndarray, scored: pd.DataFrame, intervals, prediction_reference,
                  actual_reference) -> dict:
    """The held-out rows' accuracy, risk-score error, high-risk capture and interval quality."""
    predicted = scored[PREDICTED_COLUMN].to_numpy()
    width = m.mean_width(scored["interval_lower"], scored["interval_upper"])
    return {
        "test_r2": m.r2(y_test, predicted),
        "test_mae": m.mae(y_test, predicted),
        "test_rmse": m.rmse(y_test, predicted),
        "test_risk_score_mae": m.risk_score_mae(y_test, predicted, prediction_reference, actual_reference),
        "test_high_risk_capture": m.high_risk_capture(y_test, predicted),
        "test_interval_coverage": m.interval_coverage(y_test, scored["interval_lower"], scored["interval_upper"]),
        "test_interval_width_ratio": width / (2.0 * intervals.constant_half_width),
    }


def _reference_sample(train_rows: pd.DataFrame, oof: np.ndarray, inputs, seed: int) -> pd.DataFrame:
    """A seeded sample of training rows with their out-of-fold predictions, without the member key.

    Monitoring's reference counts (the population the model was trained on) are taken from it.
    """
    sample = train_rows.assign(**{PREDICTED_COLUMN: oof})
    sample = sample.sample(n=min(len(sample), REFERENCE_SAMPLE_ROWS), random_state=seed)
    return sample[[c for c in dict.fromkeys((*inputs, *CARRIED_GROUP_COLUMNS, PREDICTED_COLUMN))
                   if c in sample.columns and c != MEMBER_KEY]].reset_index(drop=True)


def train(frame: pd.DataFrame, seed: int = 42, candidates=tuple(CANDIDATES),
          inputs=MODEL_INPUT_COLUMNS, salt: str = DEFAULT_SALT) -> TrainingResult:
    """Select, fit and evaluate the model on a features frame (labelled rows are used).

    ``salt`` draws the member-hash split and folds (recorded in the run's params)."""
    labelled = with_derived_groups(check_training_frame(frame, inputs))
    try:
        train_rows, test_rows, folds = split_by_member(labelled, salt)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    # A fixed BLAS/OpenMP thread count: scikit-learn's histogram boosting sums gradients in
    # parallel chunks, so its float results depend on the thread count; pinned, the same data
    # gives the same model on a laptop and on a Databricks cluster (docs/architecture.md,
    # "Reproducible training"). One thread also keeps OpenMP from spinning beside Spark.
    limiter = threadpool_limits(TRAINING_THREADS)
    x_train, y_train = train_rows[list(inputs)], train_rows[LABEL_COLUMN].to_numpy(float)
    x_test, y_test = test_rows[list(inputs)], test_rows[LABEL_COLUMN].to_numpy(float)
    extra = tuple(c for c in inputs if c not in MODEL_INPUT_COLUMNS)
    cv_results, out_of_fold = _cross_validate(candidates, x_train, y_train, folds, seed, extra)
    best = select_candidate(cv_results)

    pipeline = make_pipeline(best, seed, extra).fit(x_train, y_train)
    oof = out_of_fold[best]
    prediction_reference = reference_quantiles(oof)
    actual_reference = reference_quantiles(y_train)
    intervals = calibrate_intervals(x_train, y_train, oof, INTERVAL_COVERAGE)
    cv_coverage, cv_width_ratio = cross_validated_interval_quality(x_train, y_train, oof, folds, INTERVAL_COVERAGE)

    scored = score(pipeline, intervals, prediction_reference, x_test)
    test_frame = pd.concat([test_rows.reset_index(drop=True), scored.reset_index(drop=True)], axis=1)
    metrics = {
        "cv_mae": cv_results[best]["cv_mae"], "cv_r2": cv_results[best]["cv_r2"],
        "cv_risk_score_mae": m.risk_score_mae(y_train, oof, prediction_reference, actual_reference),
        "cv_high_risk_capture": m.high_risk_capture(y_train, oof),
        "cv_calibration": cv_results[best]["cv_calibration"],
        "cv_interval_coverage": cv_coverage, "cv_interval_width_ratio": cv_width_ratio,
        **_test_metrics(y_test, scored, intervals, prediction_reference, actual_reference),
    }
    evidence = oof_evidence(train_rows, oof, prediction_reference)
    groups = group_metrics(evidence, [g for g in FAIRNESS_GROUP_COLUMNS if g in evidence.columns])
    explainer, importance_usd = explain_model(pipeline, best, train_rows, inputs, seed)
    reference = training_reference(train_rows, oof, normalised(importance_usd))
    reference[IMPORTANCE_KEY] = importance_usd
    explainer.training_range = TrainingRange.from_reference(reference, tuple(inputs))
    sample = _reference_sample(train_rows, oof, inputs, seed)
    limiter.restore_original_limits()
    return TrainingResult(
        candidate=best, pipeline=pipeline, intervals=intervals,
        prediction_reference=prediction_reference, actual_reference=actual_reference,
        cv_results=cv_results, metrics=metrics, group_metrics=groups, test_frame=test_frame,
        oof_evidence=evidence, reference=reference, explainer=explainer,
        reference_sample=sample,
        params={"candidate": best, "seed": seed, "folds": FOLDS, "test_share": TEST_SHARE,
                "split_salt": salt, "split_key": MEMBER_KEY, "selection_rule":
                f"lowest CV MAE within {R2_TOLERANCE} of the best CV R2",
                "interval_coverage": INTERVAL_COVERAGE, "interval_method": "Mondrian split conformal by smoker",
                "train_rows": len(train_rows), "test_rows": len(test_rows), "inputs": ",".join(inputs),
                "candidates": ",".join(candidates), "training_threads": TRAINING_THREADS})
