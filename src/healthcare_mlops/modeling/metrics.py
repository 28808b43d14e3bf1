"""Model metrics shared by training, governance and monitoring (docs/definitions.md)."""

from __future__ import annotations

import numpy as np

from healthcare_mlops.modeling.risk import HIGH_RISK_SHARE, risk_score


def mae(actual, predicted) -> float:
    return float(np.mean(np.abs(np.asarray(actual, float) - np.asarray(predicted, float))))


def rmse(actual, predicted) -> float:
    return float(np.sqrt(np.mean((np.asarray(actual, float) - np.asarray(predicted, float)) ** 2)))


def r2(actual, predicted) -> float:
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    total = np.sum((actual - actual.mean()) ** 2)
    if total == 0:
        return float("nan")
    return float(1.0 - np.sum((actual - predicted) ** 2) / total)


def risk_score_mae(actual, predicted, prediction_reference, actual_reference) -> float:
    """Mean |score(predicted) - score(actual)|, each through its own reference distribution."""
    return float(np.mean(np.abs(risk_score(predicted, prediction_reference)
                                - risk_score(actual, actual_reference))))


def high_risk_capture(actual, predicted, share: float = HIGH_RISK_SHARE) -> float:
    """Share of the actual top ``share`` (by charges) that the model also puts in its top ``share``."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    k = max(1, int(round(len(actual) * share)))
    top_actual = set(np.argsort(-actual, kind="stable")[:k])
    top_predicted = set(np.argsort(-predicted, kind="stable")[:k])
    return len(top_actual & top_predicted) / k


def interval_coverage(actual, lower, upper) -> float:
    actual = np.asarray(actual, float)
    return float(np.mean((actual >= np.asarray(lower, float)) & (actual <= np.asarray(upper, float))))


def mean_width(lower, upper) -> float:
    return float(np.mean(np.asarray(upper, float) - np.asarray(lower, float)))
