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
from healthcare_mlops.features.definitions import GROUP_COLUMNS, MODEL_INPUT_COLUMNS, WINDOW_FAIRNESS_GROUPS
from healthcare_mlops.monitoring import statistics as st
from healthcare_mlops.monitoring.contract import AlertSeverity

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
    """Monitoring's thresholds, each the bundle variable of its name (``parameters.monitoring_thresholds``)."""

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
    verdicts: list[Verdict] = [] if judged else [_low_volume_verdict(volume, t)]
    distribution_rows, importance_of = _distribution_rows(specs, drifts, t, judged)
    rows += distribution_rows
    composite_row, composite_verdicts = _composite_drift(specs, drifts, importance_of, t, judged)
    rows.append(composite_row)
    verdicts += composite_verdicts
    prediction_psi = prediction.metrics.get("psi")
    if judged and prediction_psi is not None and prediction_psi > t.prediction_psi_alert:
        verdicts.append(Verdict("prediction_drift", CRITICAL, PREDICTION, prediction_psi, t.prediction_psi_alert,
                                f"the distribution of predicted charges moved: PSI {prediction_psi:.3f} "
                                f"(alert above {t.prediction_psi_alert:g})",
                                {"psi": prediction_psi, **{k: v for k, v in prediction.metrics.items()}}))
    for spec in specs:
        drift = drifts[spec.name]
        if spec.is_group and not (drift.current_n == 0 or drift.reference_n == 0):
            shift_rows, shift_verdicts = _demographic_shift(spec, drift, t, judged)
            rows += shift_rows
            verdicts += shift_verdicts
    return rows, verdicts, volume


def _judged_status(status: str, judged: bool) -> str:
    """A status as measured when the window had enough rows to judge, else ``insufficient_data``."""
    return status if judged else INSUFFICIENT


def _low_volume_verdict(volume: int, t: MonitoringThresholds) -> Verdict:
    """The warning that the window holds too few predictions to judge drift on."""
    return Verdict(
        "low_volume", WARNING, BATCH, volume, t.low_volume_min_predictions,
        f"only {volume} predictions in the window (minimum {t.low_volume_min_predictions}): check the "
        "upstream load and batch_inference; drift is not judged on so few rows",
        {"volume": volume})


def _distribution_rows(specs: list[ColumnSpec], drifts: dict[str, ColumnDrift], t: MonitoringThresholds,
                       judged: bool) -> tuple[list[dict], dict[str, float]]:
    """The distance rows of each input and of the prediction; and the importance of each input that drifted.

    An input drifted when its PSI is at least ``psi_moderate``; the prediction's PSI is
    judged against ``prediction_psi_alert`` instead.
    """
    rows, importance_of = [], {}
    for spec in specs:
        if not (spec.is_input or spec.name == PREDICTION):
            continue
        m = drifts[spec.name].metrics
        if "psi" in m:
            band = st.psi_band(m["psi"], t.psi_moderate, t.psi_significant)
            threshold = t.prediction_psi_alert if spec.name == PREDICTION else t.psi_moderate
            rows.append(metric_row(spec.name, "psi", m["psi"], threshold, _judged_status(band, judged)))
            if spec.is_input and m["psi"] >= t.psi_moderate:
                importance_of[spec.name] = spec.importance
        for metric in ("js_distance", "ks_statistic", "ks_pvalue", "wasserstein_norm", "chi2_statistic",
                       "chi2_pvalue"):
            if metric in m:
                rows.append(metric_row(spec.name, metric, m[metric]))
        if spec.is_input:
            rows.append(metric_row(spec.name, "importance", spec.importance))
    return rows, importance_of


def _composite_drift(specs: list[ColumnSpec], drifts: dict[str, ColumnDrift], importance_of: dict[str, float],
                     t: MonitoringThresholds, judged: bool) -> tuple[dict, list[Verdict]]:
    """The composite drift row (the importance the drifted inputs carry) and its verdict, if any.

    Critical above ``composite_drift_alert``, a warning when inputs drifted but carry less.
    """
    drifted = list(importance_of)
    composite = float(sum(importance_of.values()))
    psi_of = {s.name: drifts[s.name].metrics.get("psi") for s in specs if s.is_input}
    composite_alert = composite > t.composite_drift_alert
    row = metric_row(BATCH, "composite_drift", composite, t.composite_drift_alert,
                     _judged_status(ALERT if composite_alert else OK, judged))
    if not (judged and drifted):
        return row, []
    names = ", ".join(f"{n} (PSI {psi_of[n]:.3f}, importance {importance_of[n]:.2f})" for n in drifted)
    details = {"composite": composite, "drifted_inputs": drifted,
               "psi": {k: v for k, v in psi_of.items() if v is not None},
               "importance": {s.name: s.importance for s in specs if s.is_input}}
    if composite_alert:
        return row, [Verdict("composite_drift", CRITICAL, BATCH, composite, t.composite_drift_alert,
                             f"inputs carrying {composite:.0%} of the model's importance drifted "
                             f"(alert above {t.composite_drift_alert:.0%}): {names}", details)]
    return row, [Verdict("composite_drift", WARNING, BATCH, composite, t.composite_drift_alert,
                         f"inputs drifted at least moderately (PSI >= {t.psi_moderate:g}) but carry "
                         f"only {composite:.0%} of the model's importance: {names}", details)]


def _demographic_shift(spec: ColumnSpec, drift: ColumnDrift, t: MonitoringThresholds,
                       judged: bool) -> tuple[list[dict], list[Verdict]]:
    """The share rows of one group column's groups, and a warning when a share moved too far.

    Unseen and missing groups absent on both sides are left out.
    """
    labels = spec.bin_labels
    now, before = st.shares(drift.current_bins), st.shares(drift.reference_bins)
    rows, deltas = [], {}
    for index, label in enumerate(labels):
        if label in (st.UNSEEN, st.MISSING) and now[index] == 0 and before[index] == 0:
            continue
        delta = float(now[index] - before[index])
        deltas[label] = delta
        shifted = abs(delta) > t.group_share_shift_alert
        rows.append(metric_row(spec.name, "group_share", now[index], group_value=label))
        rows.append(metric_row(spec.name, "group_share_reference", before[index], group_value=label))
        rows.append(metric_row(spec.name, "group_share_delta", delta, t.group_share_shift_alert,
                               _judged_status(ALERT if shifted else OK, judged), group_value=label))
    moved = {k: v for k, v in deltas.items() if abs(v) > t.group_share_shift_alert}
    if not (judged and moved):
        return rows, []
    worst = max(moved, key=lambda k: abs(moved[k]))
    text = ", ".join(f"{k} {before[labels.index(k)]:.1%} -> {now[labels.index(k)]:.1%}" for k in moved)
    return rows, [Verdict("demographic_shift", WARNING, spec.name, moved[worst], t.group_share_shift_alert,
                          f"the share of {spec.name} groups moved more than "
                          f"{t.group_share_shift_alert * 100:g} percentage points: {text}",
                          {"deltas": deltas,
                           "current": {k: float(now[labels.index(k)]) for k in deltas},
                           "reference": {k: float(before[labels.index(k)]) for k in deltas}})]


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
