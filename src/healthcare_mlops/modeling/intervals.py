"""90 % prediction intervals that adapt to the member, by normalised split conformal.

A spread model learns how large a member's residual typically is (smokers' charges
spread far wider than non-smokers'): it predicts the 80th percentile of |residual|, a
scale that the rare very large residuals of the right tail do not inflate. Residuals
come from out-of-fold predictions (models that did not fit the row). One half of them
fits the spread model; the other half calibrates q, the split-conformal quantile of
|residual| / spread, with its finite-sample rank. Interval = prediction +/- q x spread.

Measured on generated data (8,000 labelled members): mean width 0.80 of a constant-width
split-conformal interval of the same coverage; an equal-tailed conformalized quantile
regression was wider than the constant interval there (1.03-1.6), because its upper
quantile falls inside the heavy tail for everyone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from healthcare_mlops.modeling.estimators import preprocessing

SPREAD_QUANTILE = 0.8
MIN_SPREAD = 1.0


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ceil((n + 1) * level)-th smallest score: the split-conformal quantile."""
    scores = np.sort(np.asarray(scores, dtype=float))
    rank = min(len(scores), max(1, math.ceil((len(scores) + 1) * level)))
    return float(scores[rank - 1])


def spread_model(seed: int, extra_categorical: tuple = ()) -> Pipeline:
    """Predicts the 80th percentile of a member's absolute residual."""
    return Pipeline([("preprocess", preprocessing(extra_categorical)),
                     ("regressor", HistGradientBoostingRegressor(
                         loss="quantile", quantile=SPREAD_QUANTILE, max_iter=150, learning_rate=0.05,
                         max_leaf_nodes=8, min_samples_leaf=40, random_state=seed))])


@dataclass
class AdaptiveIntervals:
    """Interval = prediction +/- q x spread(x)."""

    spread: Pipeline
    q: float
    constant_half_width: float   # split conformal with one width for everyone, same coverage
    coverage: float

    def bounds(self, inputs: pd.DataFrame, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        half_width = self.q * np.maximum(self.spread.predict(inputs), MIN_SPREAD)
        return np.maximum(predicted - half_width, 0.0), predicted + half_width


def calibrate_intervals(inputs: pd.DataFrame, actual: np.ndarray, out_of_fold: np.ndarray,
                        coverage: float, seed: int, extra_categorical: tuple = ()) -> AdaptiveIntervals:
    """Fit the spread model on one half of the out-of-fold residuals, calibrate on the other."""
    residual = np.abs(np.asarray(actual, float) - np.asarray(out_of_fold, float))
    order = np.random.default_rng(seed).permutation(len(residual))
    fit, calibrate = order[: len(order) // 2], order[len(order) // 2:]
    spread = spread_model(seed, extra_categorical).fit(inputs.iloc[fit], residual[fit])
    scale = np.maximum(spread.predict(inputs.iloc[calibrate]), MIN_SPREAD)
    return AdaptiveIntervals(spread=spread, q=conformal_quantile(residual[calibrate] / scale, coverage),
                             constant_half_width=conformal_quantile(residual[calibrate], coverage),
                             coverage=coverage)
