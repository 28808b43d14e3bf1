"""Monitoring's functional core for labelled batches: per-group sums in, accuracy and fairness verdicts out.

Spark (drift.py) reduces a batch whose charges are now known to per-group sums
(``SUM_COLUMNS``); here those sums become the performance rows (risk-score MAE,
calibration), the fairness rows per group column and their verdicts (thresholds and the
alert table: evaluation.py's docstring). Drift, which needs no labels, is evaluation.py's.
"""

from __future__ import annotations

import math

import pandas as pd

from healthcare_mlops.features.definitions import PROTECTED_ATTRIBUTES
from healthcare_mlops.monitoring.evaluation import (ALERT, ALL_GROUP, BATCH, CRITICAL, FAIRNESS_GROUPS, FLAG,
                                                    INSUFFICIENT, OK, PREDICTION, WARNING, MonitoringThresholds,
                                                    Verdict, metric_row)

SUM_COLUMNS = ("n", "sum_abs_error", "sum_sq_error", "sum_risk_abs_error", "sum_predicted", "sum_actual",
               "sum_actual_sq", "n_critical")


def group_performance(sums: pd.Series) -> dict:
    """MAE, risk-score MAE, R², calibration and critical share of one group's sums."""
    n = float(sums["n"])
    if n == 0:
        return {"n": 0, "mae": None, "rmse": None, "risk_score_mae": None, "r2": None,
                "calibration_ratio": None, "critical_share": None}
    total = float(sums["sum_actual_sq"]) - float(sums["sum_actual"]) ** 2 / n
    return {
        "n": int(n),
        "mae": float(sums["sum_abs_error"]) / n,
        "rmse": math.sqrt(max(float(sums["sum_sq_error"]), 0.0) / n),
        "risk_score_mae": float(sums["sum_risk_abs_error"]) / n,
        "r2": 1.0 - float(sums["sum_sq_error"]) / total if total > 0 else None,
        "calibration_ratio": float(sums["sum_predicted"]) / float(sums["sum_actual"])
        if float(sums["sum_actual"]) > 0 else None,
        "critical_share": float(sums["n_critical"]) / n,
    }


def relative_group_metrics(group: pd.Series, overall: pd.Series) -> dict:
    """A group's MAE / its mean actual, and its calibration divided by everyone else's."""
    n, actual, predicted = float(group["n"]), float(group["sum_actual"]), float(group["sum_predicted"])
    rest_actual = float(overall["sum_actual"]) - actual
    rest_predicted = float(overall["sum_predicted"]) - predicted
    relative_mae = float(group["sum_abs_error"]) / actual if n > 0 and actual > 0 else None
    calibration = predicted / actual if actual > 0 else None
    rest = rest_predicted / rest_actual if rest_actual > 0 and rest_predicted > 0 else None
    return {"relative_mae": relative_mae,
            "relative_calibration": calibration / rest if calibration is not None and rest else None}


def evaluate_performance(sums: pd.DataFrame, t: MonitoringThresholds,
                         batch: dict) -> tuple[list[dict], list[dict], list[Verdict]]:
    """Metric rows, fairness rows and verdicts from per-group sums of the labelled batch.

    ``sums`` has ``group_column``, ``group_value`` and ``SUM_COLUMNS``, with one row
    (``all``, ``all``) for the whole batch; ``batch`` says which scoring date and label
    date were joined (it goes into the alerts' details).
    """
    overall_rows = sums[(sums["group_column"] == ALL_GROUP)]
    overall = group_performance(overall_rows.iloc[0]) if len(overall_rows) else group_performance(
        pd.Series({c: 0 for c in SUM_COLUMNS}))
    labelled = overall["n"]
    judged = labelled >= t.low_volume_min_predictions
    rows = [metric_row(BATCH, "labelled_predictions", labelled, t.low_volume_min_predictions,
                       OK if judged else INSUFFICIENT)]
    if labelled == 0:
        return rows, [], []
    overall_metrics, verdicts = _overall_performance(overall, t, judged, batch)
    rows += overall_metrics
    fairness = [{"group_column": ALL_GROUP, "group_value": ALL_GROUP, **{k: overall[k] for k in FAIRNESS_METRICS}}]
    by_column: dict[str, list[dict]] = {}
    relative: dict[tuple, dict] = {}     # governance's definitions (docs/definitions.md 5), from the same sums
    for _, group in sums[sums["group_column"] != ALL_GROUP].iterrows():
        metrics = group_performance(group)
        key = (str(group["group_column"]), str(group["group_value"]))
        relative[key] = relative_group_metrics(group, overall_rows.iloc[0])
        # The stored relative calibration is the very number the band judges, so a chart of it agrees with the verdict.
        row = {"group_column": key[0], "group_value": key[1], **{k: metrics[k] for k in FAIRNESS_METRICS},
               "relative_calibration": relative[key]["relative_calibration"]}
        fairness.append(row)
        by_column.setdefault(row["group_column"], []).append(row)
    for column in FAIRNESS_GROUPS:
        groups = sorted(by_column.get(column, []), key=lambda g: g["group_value"])
        eligible = [{**g, **relative[(column, g["group_value"])]} for g in groups
                    if g["n"] >= t.fairness_min_group_size and g["mae"] is not None]
        column_rows, column_verdicts = _column_fairness(column, eligible, t, batch)
        rows += column_rows
        verdicts += column_verdicts
    rows += _four_fifths_rows(by_column.get("sex", []), t)
    return rows, fairness, verdicts


FAIRNESS_METRICS = ("n", "mae", "risk_score_mae", "calibration_ratio", "critical_share")


def _overall_performance(overall: dict, t: MonitoringThresholds, judged: bool,
                         batch: dict) -> tuple[list[dict], list[Verdict]]:
    """The batch's accuracy rows, and a critical verdict when its risk-score MAE or calibration is out of bounds."""
    def status(breach: bool) -> str:
        return INSUFFICIENT if not judged else (ALERT if breach else OK)

    rs_mae, calibration = overall["risk_score_mae"], overall["calibration_ratio"]
    rs_breach = rs_mae is not None and rs_mae > t.performance_risk_score_mae_alert
    cal_breach = calibration is not None and not (t.calibration_ratio_min <= calibration <= t.calibration_ratio_max)
    rows = [metric_row(PREDICTION, "mae", overall["mae"]), metric_row(PREDICTION, "rmse", overall["rmse"]),
            metric_row(PREDICTION, "r2", overall["r2"]),
            metric_row(PREDICTION, "risk_score_mae", rs_mae, t.performance_risk_score_mae_alert, status(rs_breach)),
            metric_row(PREDICTION, "calibration_ratio", calibration, None, status(cal_breach))]
    if not (judged and (rs_breach or cal_breach)):
        return rows, []
    reasons = []
    if rs_breach:
        reasons.append(f"risk-score MAE {rs_mae:.1f} > {t.performance_risk_score_mae_alert:g}")
    if cal_breach:
        reasons.append(f"mean predicted / mean actual {calibration:.3f} outside "
                       f"{t.calibration_ratio_min:g}-{t.calibration_ratio_max:g}")
    return rows, [Verdict(
        "performance", CRITICAL, PREDICTION, rs_mae if rs_breach else calibration,
        t.performance_risk_score_mae_alert if rs_breach else
        (t.calibration_ratio_min if calibration < t.calibration_ratio_min else t.calibration_ratio_max),
        f"on {overall['n']} members scored {batch.get('scoring_date')} with charges known "
        f"{batch.get('label_date')}: " + "; ".join(reasons),
        {**batch, **{k: v for k, v in overall.items()}})]


def _column_fairness(column: str, eligible: list[dict], t: MonitoringThresholds,
                     batch: dict) -> tuple[list[dict], list[Verdict]]:
    """The fairness rows of one group column's groups large enough to judge, and its warning, if any."""
    # Error parity is scale-aware (MAE / mean actual); calibration is relative to everyone
    # else, so an overall shift (a performance matter, judged above) is not read as unfairness.
    scaled = [g["relative_mae"] for g in eligible if g["relative_mae"] is not None]
    ratio = (max(scaled) / min(scaled) if min(scaled) > 0 else float("inf")) if len(scaled) >= 2 else None
    ratio_breach = ratio is not None and ratio > t.fairness_mae_ratio_max
    outside = [g for g in eligible if g["relative_calibration"] is not None
               and not (t.calibration_ratio_min <= g["relative_calibration"] <= t.calibration_ratio_max)]
    # Only the protected attribute raises an alert; rating factors (age band, region) the
    # ACA allows are flagged on the Fairness page, as governance reports them.
    breach = ALERT if column in PROTECTED_ATTRIBUTES else FLAG
    rows = [metric_row(column, "fairness_mae_ratio", ratio, t.fairness_mae_ratio_max,
                       INSUFFICIENT if ratio is None else (breach if ratio_breach else OK))]
    if eligible:
        worst = max(eligible, key=lambda g: abs((g["relative_calibration"] or 1.0) - 1.0))
        rows.append(metric_row(column, "calibration_ratio_worst", worst["relative_calibration"], None,
                               breach if outside else OK, group_value=worst["group_value"]))
    if not ((ratio_breach or outside) and breach == ALERT):
        return rows, []
    reasons = []
    if ratio_breach:
        reasons.append(f"ratio of MAE / mean actual, max/min {ratio:.2f} > {t.fairness_mae_ratio_max:g}")
    if outside:
        reasons.append("mean predicted / mean actual relative to everyone else outside "
                       f"{t.calibration_ratio_min:g}-{t.calibration_ratio_max:g} for "
                       + ", ".join(f"{g['group_value']} ({g['relative_calibration']:.2f})" for g in outside))
    return rows, [Verdict(
        "fairness", WARNING, column, ratio if ratio_breach else outside[0]["relative_calibration"],
        t.fairness_mae_ratio_max if ratio_breach else t.calibration_ratio_min
        if outside[0]["relative_calibration"] < t.calibration_ratio_min else t.calibration_ratio_max,
        f"fairness by {column} on members scored {batch.get('scoring_date')}: " + "; ".join(reasons),
        {**batch, "mae_ratio": ratio, "groups": eligible})]


def _four_fifths_rows(sexes: list[dict], t: MonitoringThresholds) -> list[dict]:
    """The four-fifths row: the lower critical-band share by sex over the higher (groups large enough only)."""
    shares = [g["critical_share"] for g in sexes if g["n"] >= t.fairness_min_group_size]
    if len(shares) < 2 or max(shares) <= 0:
        return []
    four_fifths = min(shares) / max(shares)
    return [metric_row("sex", "critical_share_four_fifths", four_fifths, t.four_fifths_min,
                       OK if four_fifths >= t.four_fifths_min else FLAG)]
