"""Monitoring's functional core: counts and sums in, metric rows and alert verdicts out.

Spark (drift.py) reduces the scored batch and the training reference to per-bin and
per-value counts and the labelled batch to per-group sums; everything here works on
those few hundred numbers, with no Spark and no I/O, so the console and the tests can
use it as well.

Verdicts (docs/definitions.md; thresholds are the bundle's variables):

| alert | when | severity |
|---|---|---|
| ``composite_drift`` | inputs carrying > ``composite_drift_alert`` (0.3) of the importance have PSI >= ``psi_moderate`` | critical |
| ``composite_drift`` | some input has PSI >= ``psi_moderate`` but the composite score is at most 0.3 | warning |
| ``prediction_drift`` | PSI of the predictions > ``prediction_psi_alert`` (0.25) | critical |
| ``demographic_shift`` | a group's share (sex, region, age band, smoker) moved > 10 pp; one alert per group column | warning |
| ``low_volume`` | fewer than ``low_volume_min_predictions`` (50) predictions in the window | warning |
| ``performance`` | risk-score MAE > 15, or mean predicted / mean actual outside the calibration band | critical |
| ``fairness`` | per group column (sex, region, age band; groups with n >= 30): MAE ratio max/min > 1.25 or a group's calibration outside 0.9-1.1 | warning |

A critical alert means "the model no longer fits the population it scores" and triggers a
retrain; a warning asks a person to look (a demographic or fairness movement, an upstream
outage) and retraining would not be the fix. When the window holds fewer predictions than
the low-volume minimum, drift and demographic metrics are still recorded but not judged
(status ``insufficient_data``): a handful of rows is not evidence of drift. The same holds
for performance with fewer labelled predictions than that minimum.

The risk score is a rank, so a uniform rise in costs barely moves the risk-score MAE
(``cost_inflation``, charges +25 %: 7.4 -> 9.2); the calibration part of the performance
verdict (mean predicted / mean actual, the governance band) is what catches it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.features.definitions import (GROUP_COLUMNS, MODEL_INPUT_COLUMNS, PROTECTED_ATTRIBUTES,
                                                   WINDOW_FAIRNESS_GROUPS)
from healthcare_mlops.monitoring import statistics as st
from healthcare_mlops.monitoring.contract import AlertSeverity
from healthcare_mlops.settings import numbers_from_variables

NUMERIC, CATEGORICAL = "numeric", "categorical"
PREDICTION = "prediction"
PREDICTION_SOURCE = "predicted_annual_charges"
BATCH = ""                         # column_name of batch-level metrics
FAIRNESS_GROUPS = WINDOW_FAIRNESS_GROUPS
ALL_GROUP = "all"                  # group_column / group_value of the whole labelled batch
# Rounding of values before the per-value counts that KS and Wasserstein use (None: exact;
# -1: to tens). bmi is stored with 2 decimals, so 0.01 is exact for the product's data;
# predictions are bucketed to 10 USD (the error bound is in drift.py and tested).
VALUE_DECIMALS = {"age": None, "children": None, "bmi": 2, PREDICTION: -1}

STABLE, MODERATE, SIGNIFICANT = "stable", "moderate", "significant"
OK, ALERT, INFO, FLAG = "ok", "alert", "info", "flag"
INSUFFICIENT, PENDING = "insufficient_data", "pending"
CRITICAL, WARNING = AlertSeverity.CRITICAL.value, AlertSeverity.WARNING.value


@dataclass(frozen=True)
class MonitoringThresholds:
    psi_moderate: float
    psi_significant: float
    composite_drift_alert: float
    prediction_psi_alert: float
    group_share_shift_alert: float
    low_volume_min_predictions: int
    performance_risk_score_mae_alert: float
    fairness_mae_ratio_max: float
    calibration_ratio_min: float
    calibration_ratio_max: float
    fairness_min_group_size: int
    four_fifths_min: float

    @classmethod
    def from_variables(cls, variables: dict) -> "MonitoringThresholds":
        return numbers_from_variables(cls, variables, "monitoring")


@dataclass(frozen=True)
class ColumnSpec:
    """One monitored column: how it is binned and counted, and what it is for."""

    name: str                      # column_name in the metrics: an input, 'prediction' or a group column
    source: str                    # the column in the predictions table and the reference sample
    kind: str                      # numeric / categorical
    is_input: bool = False
    is_group: bool = False
    edges: tuple = ()              # numeric: right-closed bin edges (distinct interior deciles)
    categories: tuple = ()         # categorical: the reference's categories (lower-case text)
    decimals: int | None = None    # numeric: rounding for the per-value counts
    reference_std: float = float("nan")
    importance: float = 0.0

    @property
    def regular_bins(self) -> int:
        """Bins besides ``missing``: the decile bins, or the categories plus ``unseen``."""
        return len(self.edges) + 1 if self.kind == NUMERIC else len(self.categories) + 1

    @property
    def bin_labels(self) -> list[str]:
        if self.kind == NUMERIC:
            return [*st.numeric_bin_labels(self.edges), st.MISSING]
        return st.categorical_bins(self.categories)


def column_specs(reference: dict) -> list[ColumnSpec]:
    """The monitored columns of a training reference (``modeling.training.training_reference``)."""
    importances = reference.get("feature_importances") or {}
    total = sum(max(float(v), 0.0) for v in importances.values())
    weight = {k: (max(float(v), 0.0) / total if total > 0 else 0.0) for k, v in importances.items()}
    specs = []
    for name in MODEL_INPUT_COLUMNS:
        if name in reference.get("numeric", {}):
            numeric = reference["numeric"][name]
            specs.append(ColumnSpec(name, name, NUMERIC, is_input=True, is_group=name in GROUP_COLUMNS,
                                    edges=st.numeric_edges(numeric["deciles"]), decimals=VALUE_DECIMALS.get(name, 6),
                                    reference_std=float(numeric.get("std", float("nan"))),
                                    importance=weight.get(name, 0.0)))
        elif name in reference.get("categorical", {}):
            specs.append(ColumnSpec(name, name, CATEGORICAL, is_input=True, is_group=name in GROUP_COLUMNS,
                                    categories=tuple(sorted(reference["categorical"][name])),
                                    importance=weight.get(name, 0.0)))
        else:
            raise UserError(f"the training reference has no distribution of the model input '{name}'")
    prediction = reference.get("prediction") or {}
    if not prediction.get("deciles"):
        raise UserError("the training reference has no prediction deciles")
    specs.append(ColumnSpec(PREDICTION, PREDICTION_SOURCE, NUMERIC, edges=st.numeric_edges(prediction["deciles"]),
                            decimals=VALUE_DECIMALS[PREDICTION],
                            reference_std=float(prediction.get("std", float("nan")))))
    for name in GROUP_COLUMNS:
        if name not in MODEL_INPUT_COLUMNS and name in reference.get("categorical", {}):
            specs.append(ColumnSpec(name, name, CATEGORICAL, is_group=True,
                                    categories=tuple(sorted(reference["categorical"][name]))))
    return specs


# -- drift ----------------------------------------------------------------------------------
@dataclass
class ColumnDrift:
    spec: ColumnSpec
    reference_bins: np.ndarray      # counts per bin, missing last
    current_bins: np.ndarray
    metrics: dict = field(default_factory=dict)

    @property
    def current_n(self) -> float:
        return float(self.current_bins.sum())

    @property
    def reference_n(self) -> float:
        return float(self.reference_bins.sum())


REFERENCE_SIDE, CURRENT_SIDE = "reference", "current"
COUNT_COLUMNS = ("side", "column_name", "num", "cat", "bin", "count")


def column_drift(spec: ColumnSpec, counts: pd.DataFrame) -> ColumnDrift:
    """PSI, JS distance and KS / Wasserstein (numeric) or chi-square (categorical) of one column.

    ``counts`` holds this column's rows of the value counts: ``side`` (reference /
    current), ``num`` (rounded numeric value), ``cat`` (text value), ``bin``, ``count``.
    """
    sides = {side: counts[counts["side"] == side] for side in (REFERENCE_SIDE, CURRENT_SIDE)}
    bins = {side: st.bin_counts(part["bin"].to_numpy(int), part["count"].to_numpy(float), spec.regular_bins)
            for side, part in sides.items()}
    drift = ColumnDrift(spec, bins[REFERENCE_SIDE], bins[CURRENT_SIDE])
    ref_shares, cur_shares = st.shares(drift.reference_bins), st.shares(drift.current_bins)
    if drift.reference_n == 0 or drift.current_n == 0:
        return drift
    drift.metrics["psi"] = st.psi(ref_shares, cur_shares)
    drift.metrics["js_distance"] = st.js_distance(drift.reference_bins, drift.current_bins)
    if spec.kind == NUMERIC:
        grid, per_side = _per_value_counts(sides)
        if len(grid):
            ks = st.ks_from_counts(grid, per_side[REFERENCE_SIDE], per_side[CURRENT_SIDE])
            drift.metrics["ks_statistic"] = ks.statistic
            drift.metrics["ks_pvalue"] = ks.pvalue
            distance = st.wasserstein_from_counts(grid, per_side[REFERENCE_SIDE], per_side[CURRENT_SIDE])
            drift.metrics["wasserstein_norm"] = st.normalised_wasserstein(distance, spec.reference_std)
    else:
        chi = st.chi_square(drift.current_bins, ref_shares)
        drift.metrics["chi2_statistic"] = chi.statistic
        drift.metrics["chi2_pvalue"] = chi.pvalue
    return drift


def _per_value_counts(sides: dict) -> tuple[np.ndarray, dict]:
    """The sorted distinct values of both sides and each side's count per value (nulls left out)."""
    pairs = {}
    for side, part in sides.items():
        values, counts = part["num"].to_numpy(float), part["count"].to_numpy(float)
        keep = ~np.isnan(values)
        pairs[side] = (values[keep], counts[keep])
    grid = np.unique(np.concatenate([v for v, _ in pairs.values()]))
    per_side = {}
    for side, (values, counts) in pairs.items():
        per_side[side] = np.bincount(np.searchsorted(grid, values), weights=counts, minlength=len(grid))
    return grid, per_side


def drift_by_column(specs: list[ColumnSpec], counts: pd.DataFrame) -> dict[str, ColumnDrift]:
    parts = dict(tuple(counts.groupby("column_name", sort=False)))
    empty = counts.iloc[0:0]
    return {spec.name: column_drift(spec, parts.get(spec.name, empty)) for spec in specs}


@dataclass
class Verdict:
    """An alert before it has an id and a window: what, how bad, and the numbers behind it."""

    type: str
    severity: str
    column_name: str
    value: float | None
    threshold: float | None
    message: str
    details: dict = field(default_factory=dict)


def metric_row(column_name: str, metric: str, value, threshold=None, status: str = INFO, group_value=None) -> dict:
    """One row of ml_drift_metrics (without the run columns); NaN is stored as null."""
    value = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    return {"column_name": column_name, "group_value": group_value, "metric": metric, "value": value,
            "threshold": None if threshold is None else float(threshold), "status": status}


def evaluate_drift(specs: list[ColumnSpec], counts: pd.DataFrame,
                   t: MonitoringThresholds) -> tuple[list[dict], list[Verdict], int]:
    """Metric rows and verdicts of the window's drift, demographics and volume; and its volume."""
    drifts = drift_by_column(specs, counts)
    prediction = drifts[PREDICTION]
    volume = int(round(prediction.current_n))
    judged = volume >= t.low_volume_min_predictions
    rows: list[dict] = [metric_row(BATCH, "volume", volume, t.low_volume_min_predictions, OK if judged else ALERT)]
    verdicts: list[Verdict] = []
    if not judged:
        verdicts.append(Verdict(
            "low_volume", WARNING, BATCH, volume, t.low_volume_min_predictions,
            f"only {volume} predictions in the window (minimum {t.low_volume_min_predictions}): check the "
            "upstream load and batch_inference; drift is not judged on so few rows",
            {"volume": volume}))

    def judged_status(status: str) -> str:
        return status if judged else INSUFFICIENT

    drifted, importance_of = [], {}
    for spec in specs:
        drift = drifts[spec.name]
        if not (spec.is_input or spec.name == PREDICTION):
            continue
        m = drift.metrics
        if "psi" in m:
            band = st.psi_band(m["psi"], t.psi_moderate, t.psi_significant)
            threshold = t.prediction_psi_alert if spec.name == PREDICTION else t.psi_moderate
            rows.append(metric_row(spec.name, "psi", m["psi"], threshold, judged_status(band)))
            if spec.is_input and m["psi"] >= t.psi_moderate:
                drifted.append(spec.name)
                importance_of[spec.name] = spec.importance
        for metric in ("js_distance", "ks_statistic", "ks_pvalue", "wasserstein_norm", "chi2_statistic",
                       "chi2_pvalue"):
            if metric in m:
                rows.append(metric_row(spec.name, metric, m[metric]))
        if spec.is_input:
            rows.append(metric_row(spec.name, "importance", spec.importance))

    composite = float(sum(importance_of.values()))
    psi_of = {s.name: drifts[s.name].metrics.get("psi") for s in specs if s.is_input}
    composite_alert = composite > t.composite_drift_alert
    rows.append(metric_row(BATCH, "composite_drift", composite, t.composite_drift_alert,
                     judged_status(ALERT if composite_alert else OK)))
    if judged and drifted:
        names = ", ".join(f"{n} (PSI {psi_of[n]:.3f}, importance {importance_of[n]:.2f})" for n in drifted)
        details = {"composite": composite, "drifted_inputs": drifted,
                   "psi": {k: v for k, v in psi_of.items() if v is not None},
                   "importance": {s.name: s.importance for s in specs if s.is_input}}
        if composite_alert:
            verdicts.append(Verdict("composite_drift", CRITICAL, BATCH, composite, t.composite_drift_alert,
                                    f"inputs carrying {composite:.0%} of the model's importance drifted "
                                    f"(alert above {t.composite_drift_alert:.0%}): {names}", details))
        else:
            verdicts.append(Verdict("composite_drift", WARNING, BATCH, composite, t.composite_drift_alert,
                                    f"inputs drifted at least moderately (PSI >= {t.psi_moderate:g}) but carry "
                                    f"only {composite:.0%} of the model's importance: {names}", details))

    prediction_psi = prediction.metrics.get("psi")
    if judged and prediction_psi is not None and prediction_psi > t.prediction_psi_alert:
        verdicts.append(Verdict("prediction_drift", CRITICAL, PREDICTION, prediction_psi, t.prediction_psi_alert,
                                f"the distribution of predicted charges moved: PSI {prediction_psi:.3f} "
                                f"(alert above {t.prediction_psi_alert:g})",
                                {"psi": prediction_psi, **{k: v for k, v in prediction.metrics.items()}}))

    for spec in specs:
        if not spec.is_group:
            continue
        drift = drifts[spec.name]
        if drift.current_n == 0 or drift.reference_n == 0:
            continue
        labels = spec.bin_labels
        now, before = st.shares(drift.current_bins), st.shares(drift.reference_bins)
        deltas = {}
        for index, label in enumerate(labels):
            if label in (st.UNSEEN, st.MISSING) and now[index] == 0 and before[index] == 0:
                continue
            delta = float(now[index] - before[index])
            deltas[label] = delta
            shifted = abs(delta) > t.group_share_shift_alert
            rows.append(metric_row(spec.name, "group_share", now[index], group_value=label))
            rows.append(metric_row(spec.name, "group_share_reference", before[index], group_value=label))
            rows.append(metric_row(spec.name, "group_share_delta", delta, t.group_share_shift_alert,
                             judged_status(ALERT if shifted else OK), group_value=label))
        moved = {k: v for k, v in deltas.items() if abs(v) > t.group_share_shift_alert}
        if judged and moved:
            worst = max(moved, key=lambda k: abs(moved[k]))
            text = ", ".join(f"{k} {before[labels.index(k)]:.1%} -> {now[labels.index(k)]:.1%}" for k in moved)
            verdicts.append(Verdict("demographic_shift", WARNING, spec.name, moved[worst], t.group_share_shift_alert,
                                    f"the share of {spec.name} groups moved more than "
                                    f"{t.group_share_shift_alert * 100:g} percentage points: {text}",
                                    {"deltas": deltas,
                                     "current": {k: float(now[labels.index(k)]) for k in deltas},
                                     "reference": {k: float(before[labels.index(k)]) for k in deltas}}))
    return rows, verdicts, volume


# -- performance and fairness ---------------------------------------------------------------
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
    rows = [metric_row(BATCH, "labelled_predictions", labelled, t.low_volume_min_predictions, OK if judged else INSUFFICIENT)]
    verdicts: list[Verdict] = []
    fairness: list[dict] = []
    if labelled == 0:
        return rows, fairness, verdicts

    def status(breach: bool) -> str:
        return INSUFFICIENT if not judged else (ALERT if breach else OK)

    rs_mae, calibration = overall["risk_score_mae"], overall["calibration_ratio"]
    rs_breach = rs_mae is not None and rs_mae > t.performance_risk_score_mae_alert
    cal_breach = calibration is not None and not (t.calibration_ratio_min <= calibration <= t.calibration_ratio_max)
    rows += [metric_row(PREDICTION, "mae", overall["mae"]), metric_row(PREDICTION, "rmse", overall["rmse"]),
             metric_row(PREDICTION, "r2", overall["r2"]),
             metric_row(PREDICTION, "risk_score_mae", rs_mae, t.performance_risk_score_mae_alert, status(rs_breach)),
             metric_row(PREDICTION, "calibration_ratio", calibration, None, status(cal_breach))]
    if judged and (rs_breach or cal_breach):
        reasons = []
        if rs_breach:
            reasons.append(f"risk-score MAE {rs_mae:.1f} > {t.performance_risk_score_mae_alert:g}")
        if cal_breach:
            reasons.append(f"mean predicted / mean actual {calibration:.3f} outside "
                           f"{t.calibration_ratio_min:g}-{t.calibration_ratio_max:g}")
        verdicts.append(Verdict(
            "performance", CRITICAL, PREDICTION, rs_mae if rs_breach else calibration,
            t.performance_risk_score_mae_alert if rs_breach else
            (t.calibration_ratio_min if calibration < t.calibration_ratio_min else t.calibration_ratio_max),
            f"on {labelled} members scored {batch.get('scoring_date')} with charges known "
            f"{batch.get('label_date')}: " + "; ".join(reasons),
            {**batch, **{k: v for k, v in overall.items()}}))

    fairness.append({"group_column": ALL_GROUP, "group_value": ALL_GROUP,
                     **{k: overall[k] for k in ("n", "mae", "risk_score_mae", "calibration_ratio", "critical_share")}})
    by_column: dict[str, list[dict]] = {}
    relative: dict[tuple, dict] = {}     # governance's definitions (docs/definitions.md 5), from the same sums
    for _, group in sums[sums["group_column"] != ALL_GROUP].iterrows():
        metrics = group_performance(group)
        row = {"group_column": str(group["group_column"]), "group_value": str(group["group_value"]),
               **{k: metrics[k] for k in ("n", "mae", "risk_score_mae", "calibration_ratio", "critical_share")}}
        fairness.append(row)
        by_column.setdefault(row["group_column"], []).append(row)
        relative[(row["group_column"], row["group_value"])] = relative_group_metrics(group, overall_rows.iloc[0])

    for column in FAIRNESS_GROUPS:
        groups = sorted(by_column.get(column, []), key=lambda g: g["group_value"])
        eligible = [{**g, **relative[(column, g["group_value"])]} for g in groups
                    if g["n"] >= t.fairness_min_group_size and g["mae"] is not None]
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
        rows.append(metric_row(column, "fairness_mae_ratio", ratio, t.fairness_mae_ratio_max,
                         INSUFFICIENT if ratio is None else (breach if ratio_breach else OK)))
        if eligible:
            worst = max(eligible, key=lambda g: abs((g["relative_calibration"] or 1.0) - 1.0))
            rows.append(metric_row(column, "calibration_ratio_worst", worst["relative_calibration"], None,
                             breach if outside else OK, group_value=worst["group_value"]))
        if (ratio_breach or outside) and breach == ALERT:
            reasons = []
            if ratio_breach:
                reasons.append(f"ratio of MAE / mean actual, max/min {ratio:.2f} > {t.fairness_mae_ratio_max:g}")
            if outside:
                reasons.append("mean predicted / mean actual relative to everyone else outside "
                               f"{t.calibration_ratio_min:g}-{t.calibration_ratio_max:g} for "
                               + ", ".join(f"{g['group_value']} ({g['relative_calibration']:.2f})" for g in outside))
            verdicts.append(Verdict(
                "fairness", WARNING, column, ratio if ratio_breach else outside[0]["relative_calibration"],
                t.fairness_mae_ratio_max if ratio_breach else t.calibration_ratio_min
                if outside[0]["relative_calibration"] < t.calibration_ratio_min else t.calibration_ratio_max,
                f"fairness by {column} on members scored {batch.get('scoring_date')}: " + "; ".join(reasons),
                {**batch, "mae_ratio": ratio, "groups": eligible}))
    sexes = [g for g in by_column.get("sex", []) if g["n"] >= t.fairness_min_group_size]
    shares = [g["critical_share"] for g in sexes]
    if len(shares) >= 2 and max(shares) > 0:
        four_fifths = min(shares) / max(shares)
        rows.append(metric_row("sex", "critical_share_four_fifths", four_fifths, t.four_fifths_min,
                         OK if four_fifths >= t.four_fifths_min else FLAG))
    return rows, fairness, verdicts


def details_json(details: dict) -> str:
    """The values behind an alert as JSON (numpy numbers and NaN made plain)."""
    def clean(value):
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value
    return json.dumps(clean(details), sort_keys=True)
