"""Today's error without labels: Direct Loss Estimation (DLE) of a window's MAE, with an interval.

Actual annual charges arrive a year (plus claims run-out) after a prediction. Until then DLE
estimates how wrong the model is: a second model learns the monitored model's absolute
error from the model inputs and its prediction, on a reference whose charges are known and
which the monitored model did not train on (its held-out rows); the window's estimated MAE
is the mean of that loss model's output over the window's rows.

Cross-fitting: the reference is split into ``folds``; each fold's loss model learns on the
others. The estimate is the mean over the fold models; its interval adds the spread of the
fold models' estimates (the loss model's own uncertainty) and the sampling error of a
window of ``n`` rows (the reference's absolute errors' standard deviation over sqrt(n)).

What it can and cannot see (docs/definitions.md): it follows a *covariate* shift (more
smokers, older members: inputs whose errors the reference shows), because the error is
learnt as a function of the inputs. It cannot see a change in the price level or in how
charges follow the inputs (concept shift): the inputs look the same, so the estimate stays
where the reference was while the realised error moves. NannyML's DLE is the same method;
the package was not taken because it pulls in GPU, cloud-storage and telemetry packages
this product does not want (``pip install --dry-run nannyml``);
benchmarks/estimate_crosscheck.py compares the two on the same windows.

The same function estimates the risk-score MAE: pass the predicted and actual risk-score
columns instead of charges. Training fits both loss models on its held-out rows
(``fit_estimator``) and logs the fitted ``PerformanceEstimator`` with the version, never the
rows; monitoring applies it to the window (``estimate_window``). Pure: frames and parameters
in, an ``Estimate`` out.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from healthcare_mlops.features.definitions import LABEL_COLUMN
from healthcare_mlops.modeling.risk import risk_score
from healthcare_mlops.modeling.threads import pinned_threads
from healthcare_mlops.monitoring.evaluation import ALERT, INFO, OK, PREDICTION, WARNING, Verdict, metric_row

MIN_REFERENCE_ROWS = 200
PREDICTED_COLUMN, RISK_COLUMN, ACTUAL_RISK_COLUMN = "predicted_annual_charges", "risk_score", "actual_risk_score"
# What is estimated, and from which (predicted, actual) columns of the labelled reference.
ESTIMATED = {"mae": (PREDICTED_COLUMN, LABEL_COLUMN), "risk_score_mae": (RISK_COLUMN, ACTUAL_RISK_COLUMN)}
UNAVAILABLE = "unavailable"          # ml_drift_metrics.status of an estimate that could not be made
ESTIMATE_ALERT = "estimated_performance"


@dataclass(frozen=True)
class EstimateParams:
    """Cross-fitting folds, the interval's level, and the seed of the fold split and loss models."""

    folds: int = 5
    ci_level: float = 0.9
    seed: int = 0


@dataclass(frozen=True)
class Estimate:
    """An estimated MAE and its interval over ``n`` rows."""

    value: float
    lower: float
    upper: float
    n: int

    def covers(self, realised: float) -> bool:
        return self.lower <= realised <= self.upper

    def beyond(self, threshold: float) -> bool:
        """The whole interval is above ``threshold``: what an alert on an estimate needs."""
        return self.lower > threshold


@dataclass(frozen=True)
class LossModel:
    """The fitted fold models of the absolute error and what the interval needs from the reference."""

    models: tuple
    inputs: tuple[str, ...]
    categories: dict
    error_sd: float
    params: EstimateParams


def _design(frame: pd.DataFrame, inputs: tuple[str, ...], categories: dict, predicted: pd.Series) -> np.ndarray:
    """The loss model's features: numeric inputs as they are, categorical inputs as codes, and the prediction."""
    columns = []
    for name in inputs:
        if name in categories:
            codes = pd.Categorical(frame[name].astype(str).str.lower(), categories=categories[name]).codes
            columns.append(codes.astype(float))
        else:
            columns.append(pd.to_numeric(frame[name], errors="coerce").astype(float).to_numpy())
    columns.append(predicted.astype(float).to_numpy())
    return np.column_stack(columns)


def fit_loss_model(reference: pd.DataFrame, inputs: tuple[str, ...], predicted: str, actual: str,
                   params: EstimateParams = EstimateParams()) -> LossModel:
    """DLE's loss model on a labelled reference the monitored model did not train on."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold

    if len(reference) < MIN_REFERENCE_ROWS:
        raise ValueError(f"the reference has {len(reference)} labelled rows; DLE needs at least {MIN_REFERENCE_ROWS}")
    categories = {name: sorted(reference[name].astype(str).str.lower().unique()) for name in inputs
                  if not pd.api.types.is_numeric_dtype(reference[name]) or pd.api.types.is_bool_dtype(reference[name])}
    features = _design(reference, inputs, categories, reference[predicted])
    error = np.abs(reference[actual].astype(float).to_numpy() - reference[predicted].astype(float).to_numpy())
    models = []
    with pinned_threads():          # the same loss models on any machine, as training's fits
        for train, _ in KFold(params.folds, shuffle=True, random_state=params.seed).split(features):
            model = HistGradientBoostingRegressor(max_iter=150, learning_rate=0.08, min_samples_leaf=40,
                                                  random_state=params.seed)
            models.append(model.fit(features[train], error[train]))
    return LossModel(tuple(models), tuple(inputs), categories, float(error.std(ddof=1)), params)


def estimate_mae(loss: LossModel, current: pd.DataFrame, predicted: str, counts: np.ndarray | None = None) -> Estimate:
    """The window's estimated MAE and its interval (see the module docstring).

    ``counts``: how many times each row of ``current`` is in the window (a draw with replacement
    given as its distinct rows): the same estimate as of the repeated rows, for a fraction of the
    loss models' predictions."""
    n = len(current) if counts is None else int(np.sum(counts))
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    features = _design(current, loss.inputs, loss.categories, current[predicted])
    per_model = np.array([np.average(np.clip(model.predict(features), 0.0, None), weights=counts)
                          for model in loss.models])
    value = float(per_model.mean())
    spread = float(per_model.var(ddof=1)) if len(per_model) > 1 else 0.0
    z = NormalDist().inv_cdf(0.5 + loss.params.ci_level / 2)
    half = z * float(np.sqrt(spread + loss.error_sd ** 2 / n))
    return Estimate(value, max(value - half, 0.0), value + half, n)


def labelled_reference(scored: pd.DataFrame, inputs, actual_reference: np.ndarray) -> pd.DataFrame:
    """The held-out rows DLE learns from: model inputs, predictions, actual charges and both risk scores."""
    frame = scored[[*inputs, PREDICTED_COLUMN, RISK_COLUMN, LABEL_COLUMN]].reset_index(drop=True)
    return frame.assign(**{ACTUAL_RISK_COLUMN: risk_score(frame[LABEL_COLUMN], actual_reference)})


@dataclass(frozen=True)
class PerformanceEstimator:
    """One loss model per estimated metric (keys of ``ESTIMATED``), fitted at training time on the
    held-out rows; training logs it with the version, so no member row leaves training."""

    losses: dict                # metric -> LossModel
    reference_rows: int


def fit_estimator(reference: pd.DataFrame, inputs: tuple[str, ...],
                  params: EstimateParams = EstimateParams()) -> PerformanceEstimator:
    """The loss models of ``labelled_reference``'s rows; ValueError when there are too few."""
    return PerformanceEstimator({metric: fit_loss_model(reference, tuple(inputs), predicted, actual, params)
                                 for metric, (predicted, actual) in ESTIMATED.items()}, len(reference))


def estimate_window(estimator: PerformanceEstimator, current: pd.DataFrame) -> dict[str, Estimate]:
    """The window's estimated MAE and risk-score MAE from its scored rows (inputs, prediction, risk score)."""
    return {metric: estimate_mae(loss, current, ESTIMATED[metric][0]) for metric, loss in estimator.losses.items()}


def estimate_rows(estimates: dict[str, Estimate], column_name: str, risk_score_mae_alert: float | None,
                  described: dict) -> tuple[list[dict], list[Verdict]]:
    """``estimated_<metric>`` rows with ``_lower``/``_upper`` rows, and a warning when the risk-score
    MAE's whole interval is above the threshold the realised risk-score MAE alerts on."""
    rows, verdicts = [], []
    for metric, estimate in estimates.items():
        threshold = risk_score_mae_alert if metric == "risk_score_mae" else None
        beyond = threshold is not None and estimate.n > 0 and estimate.beyond(threshold)
        name = f"estimated_{metric}"
        rows += [metric_row(column_name, name, estimate.value, threshold, (ALERT if beyond else OK)
                            if threshold is not None else INFO),
                 metric_row(column_name, f"{name}_lower", estimate.lower),
                 metric_row(column_name, f"{name}_upper", estimate.upper),
                 metric_row(column_name, f"{name}_n", estimate.n)]
        if beyond and column_name != PREDICTION:     # the labelled batch's estimate is a comparison only
            verdicts.append(Verdict(
                ESTIMATE_ALERT, WARNING, column_name, estimate.value, threshold,
                f"estimated {metric.replace('_', ' ')} {estimate.value:.1f} (interval {estimate.lower:.1f}-"
                f"{estimate.upper:.1f}) is wholly above {threshold:g}, before any labels",
                {**described, "lower": estimate.lower, "upper": estimate.upper, "n": estimate.n}))
    return rows, verdicts


def unavailable_rows(column_name: str, reason: str) -> list[dict]:
    """The estimate rows of a window whose estimate cannot be made; the reason is in ``group_value``."""
    return [metric_row(column_name, f"estimated_{metric}", None, None, UNAVAILABLE, group_value=reason)
            for metric in ESTIMATED]
