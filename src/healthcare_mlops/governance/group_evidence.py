"""The group checks' evidence without member rows: bootstrap sums per group, as MLflow stores it.

The group checks judge out-of-fold predictions of every training member, with bootstrap
intervals (``fairness.py``). Logging those predictions as rows would put one row per
member (sex, region, age band, smoker, family size, actual and predicted charges) in
MLflow. So training reduces them before logging: per group column and group, the member
count, the number flagged critical, and for the data itself (sample 0) and for each of
``STORED_SAMPLES`` bootstrap samples the sums of actual charges, predicted charges and
absolute errors. Every number the checks need is a function of these sums, so the
verdicts are those the rows would give; governance judges the first
``fairness_bootstrap_samples`` of them (each group draws from its own generator, so that
prefix is exactly the draw of that many samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from healthcare_mlops.governance import fairness as fx
from healthcare_mlops.modeling.risk import CRITICAL_FLAG

BOOTSTRAP_SEED = 12        # fixed: the same evidence always gives the same intervals and verdicts
STORED_SAMPLES = 1000      # the most bootstrap samples a governance run can ask for
ACTUAL, PREDICTED, CRITICAL = "annual_charges", "predicted_annual_charges", CRITICAL_FLAG
FRAME_COLUMNS = ("group_column", "group_value", "sample", "n", "n_critical", "sum_actual", "sum_predicted",
                 "sum_abs_error")


@dataclass
class ColumnSums:
    """One group column: its groups, their sizes and critical counts, and the bootstrap sums."""

    labels: list
    count: np.ndarray             # members per group
    critical: np.ndarray | None   # members flagged critical per group (None: not known)
    sum_actual: np.ndarray        # samples x groups; sample 0 is the data itself
    sum_predicted: np.ndarray
    sum_abs_error: np.ndarray


@dataclass
class GroupEvidence:
    """Per group column, the sums the group checks judge (no member rows)."""

    sums: dict

    @property
    def columns(self) -> list:
        return list(self.sums)

    @property
    def samples(self) -> int:
        """Bootstrap samples held (sample 0, the data, not counted)."""
        return min((len(s.sum_actual) - 1 for s in self.sums.values()), default=0)

    @classmethod
    def from_rows(cls, frame: pd.DataFrame, columns, n_boot: int = STORED_SAMPLES,
                  seed: int = BOOTSTRAP_SEED) -> "GroupEvidence":
        """Reduce out-of-fold rows (group columns, actual, predicted, critical flag) to sums."""
        actual, predicted = frame[ACTUAL].to_numpy(float), frame[PREDICTED].to_numpy(float)
        sums = {}
        for column in (c for c in columns if c in frame.columns):
            labels, codes = fx.group_codes(frame[column])
            count, total_actual, total_predicted, total_error = fx.bootstrap_group_sums(
                codes, len(labels), actual, predicted, n_boot, seed)
            critical = (np.bincount(codes, weights=frame[CRITICAL].to_numpy(float), minlength=len(labels))
                        if CRITICAL in frame.columns else None)
            sums[column] = ColumnSums(labels, count[0].astype(int), critical, total_actual, total_predicted,
                                      total_error)
        return cls(sums)

    def statistics(self, column: str, n_boot: int, ci_level: float) -> dict:
        """``fairness.column_statistics`` of one column from the first ``n_boot`` samples."""
        if n_boot > self.samples:
            raise ValueError(f"the evidence holds {self.samples} bootstrap samples, "
                             f"fewer than the {n_boot} asked for (fairness_bootstrap_samples)")
        part = self.sums[column]
        window = slice(0, n_boot + 1)
        count = np.broadcast_to(part.count.astype(float), (n_boot + 1, len(part.labels)))
        return fx.statistics_from_sums(part.labels, count, part.sum_actual[window], part.sum_predicted[window],
                                       part.sum_abs_error[window], ci_level)

    def critical_shares(self, column: str) -> dict | None:
        """Share flagged critical per group of ``column`` (None when the flags are not known)."""
        part = self.sums.get(column)
        if part is None or part.critical is None:
            return None
        return {label: float(c / n) for label, c, n in zip(part.labels, part.critical, part.count)}

    def group_metrics(self) -> list[dict]:
        """Size, MAE, MAE / mean actual, mean predicted / mean actual, share critical per group."""
        rows = []
        for column, part in self.sums.items():
            for i, label in enumerate(part.labels):
                n, actual, error = int(part.count[i]), part.sum_actual[0, i], part.sum_abs_error[0, i]
                rows.append({"group_column": column, "group_value": label, "n": n, "mae": float(error / n),
                             "relative_mae": float(error / actual),
                             "calibration_ratio": float(part.sum_predicted[0, i] / actual),
                             "critical_share": None if part.critical is None else float(part.critical[i] / n)})
        return rows

    def to_frame(self) -> pd.DataFrame:
        """The long table logged as an MLflow artifact: one row per (column, group, sample)."""
        tables = []
        for column, part in self.sums.items():
            samples, groups = part.sum_actual.shape
            critical = part.critical if part.critical is not None else np.full(groups, np.nan)
            tables.append(pd.DataFrame({
                "group_column": column, "group_value": np.tile(part.labels, samples),
                "sample": np.repeat(np.arange(samples), groups), "n": np.tile(part.count, samples),
                "n_critical": np.tile(critical, samples), "sum_actual": part.sum_actual.ravel(),
                "sum_predicted": part.sum_predicted.ravel(), "sum_abs_error": part.sum_abs_error.ravel()}))
        return pd.concat(tables, ignore_index=True)[list(FRAME_COLUMNS)]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "GroupEvidence":
        """The evidence back from ``to_frame``'s table."""
        missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"the group evidence lacks the columns {', '.join(missing)}")
        sums = {}
        for column, part in frame.groupby("group_column", sort=False):
            wide = {name: part.pivot(index="sample", columns="group_value", values=name).sort_index()
                    for name in ("n", "n_critical", "sum_actual", "sum_predicted", "sum_abs_error")}
            labels = [str(v) for v in wide["sum_actual"].columns]
            critical = wide["n_critical"].iloc[0].to_numpy(float)
            sums[column] = ColumnSums(labels, wide["n"].iloc[0].to_numpy(int),
                                      None if np.isnan(critical).any() else critical,
                                      wide["sum_actual"].to_numpy(float), wide["sum_predicted"].to_numpy(float),
                                      wide["sum_abs_error"].to_numpy(float))
        return cls(sums)


def as_group_evidence(oof, columns, n_boot: int) -> GroupEvidence | None:
    """The evidence as stored, or out-of-fold rows (tests, a training run in memory) reduced to it."""
    if oof is None or isinstance(oof, GroupEvidence):
        return oof
    return GroupEvidence.from_rows(oof, columns, n_boot)
