"""90 % prediction intervals that adapt to the member: Mondrian split conformal by smoker.

Smokers' charges spread far wider around what their age and bmi predict than
non-smokers' (whose few very large residuals are a small right tail): one width for
everyone is too wide for non-smokers and too narrow for smokers. Mondrian conformal
calibrates a separate half-width per smoker group: the split-conformal quantile of
|actual - predicted| over that group's out-of-fold residuals (predictions by models that
did not fit the row), with its finite-sample rank, so each group is covered at the level.
Interval = prediction +/- the group's half-width. The constant-width interval (the same
quantile over everyone) is kept for the width ratio the training run logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

GROUP_COLUMN = "smoker"
MIN_GROUP_ROWS = 20       # a smaller group falls back to the constant width


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ceil((n + 1) * level)-th smallest score: the split-conformal quantile."""
    scores = np.sort(np.asarray(scores, dtype=float))
    rank = min(len(scores), max(1, math.ceil((len(scores) + 1) * level)))
    return float(scores[rank - 1])


def _group_key(value) -> str:
    return str(bool(value)).lower() if isinstance(value, (bool, np.bool_)) else str(value).lower()


@dataclass
class AdaptiveIntervals:
    """Interval = prediction +/- half_widths[the member's group] (constant width for unseen groups)."""

    half_widths: dict
    constant_half_width: float   # split conformal with one width for everyone, same coverage
    coverage: float
    group_column: str = GROUP_COLUMN
    group_sizes: dict = field(default_factory=dict)

    def half_width(self, inputs: pd.DataFrame) -> np.ndarray:
        keys = inputs[self.group_column].map(_group_key)
        return keys.map(self.half_widths).fillna(self.constant_half_width).to_numpy(float)

    def bounds(self, inputs: pd.DataFrame, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        half_width = self.half_width(inputs)
        return np.maximum(predicted - half_width, 0.0), predicted + half_width


def calibrate_intervals(inputs: pd.DataFrame, actual: np.ndarray, out_of_fold: np.ndarray,
                        coverage: float) -> AdaptiveIntervals:
    """Per-group conformal half-widths from the out-of-fold residuals of the training rows."""
    residual = np.abs(np.asarray(actual, float) - np.asarray(out_of_fold, float))
    keys = inputs[GROUP_COLUMN].map(_group_key).to_numpy()
    constant = conformal_quantile(residual, coverage)
    half_widths, sizes = {}, {}
    for key in sorted(set(keys)):
        mask = keys == key
        sizes[key] = int(mask.sum())
        half_widths[key] = conformal_quantile(residual[mask], coverage) if mask.sum() >= MIN_GROUP_ROWS else constant
    return AdaptiveIntervals(half_widths=half_widths, constant_half_width=constant, coverage=coverage,
                             group_sizes=sizes)


def cross_validated_interval_quality(inputs: pd.DataFrame, actual: np.ndarray, out_of_fold: np.ndarray,
                                     folds: np.ndarray, coverage: float) -> tuple[float, float]:
    """Coverage and width ratio (adaptive / constant) of intervals judged on every training member.

    For each fold, the half-widths are calibrated on the other folds' out-of-fold residuals
    and judged on this fold's: an estimate over all members instead of the small test split
    (on 250 test rows a 90 % coverage swings by about +/- 2 points by chance alone)."""
    actual, out_of_fold = np.asarray(actual, float), np.asarray(out_of_fold, float)
    covered, width, constant = np.zeros(len(actual), bool), np.zeros(len(actual)), np.zeros(len(actual))
    for fold in np.unique(folds):
        held, rest = folds == fold, folds != fold
        intervals = calibrate_intervals(inputs[rest], actual[rest], out_of_fold[rest], coverage)
        half = intervals.half_width(inputs[held])
        covered[held] = np.abs(actual[held] - out_of_fold[held]) <= half
        width[held], constant[held] = 2 * half, 2 * intervals.constant_half_width
    return float(covered.mean()), float(width.mean() / constant.mean())
