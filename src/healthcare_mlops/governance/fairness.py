"""Group checks that tell bias from noise: numbers in, verdicts with confidence intervals out.

Judged on the out-of-fold predictions of every training member (each group has all its
members), per group column (docs/definitions.md):

- calibration relative to the rest: (group mean predicted / group mean actual) divided by
  the same ratio over every member outside the group; inside the calibration band. An
  overall shift moves every group and the rest alike, so it cancels here (it is a
  performance matter, judged by ``calibration_overall``).
- error parity, scale-aware: each group's MAE / its mean actual charges; the largest over
  the smallest at most the MAE-ratio threshold. Older members cost more and so have larger
  dollar errors: that is scale, not bias.

Every value carries a bootstrap interval (members resampled with replacement within each
group, ``n_boot`` times, the quantiles of ``ci_level``). Verdict: fail when the whole
interval lies beyond the threshold, warn when only the point estimate does, pass
otherwise, and "too few members" for groups under the minimum size (not judged).

Why not Fairlearn's ``MetricFrame(n_boot=...)``: measured here, one MetricFrame with two
metrics and 400 bootstraps on 1,338 rows took 13.8 s (it recomputes the pandas group-by
per sample); governance needs one per group column and group-vs-rest comparison, and the
rule's tests run it 80 times. The vectorised bootstrap below draws the same kind of
samples (rows with replacement) in milliseconds; its point estimates are checked against
MetricFrame's ``by_group`` in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PASS, FAIL, WARN, TOO_FEW = "pass", "fail", "warn", "too few members"
DRAWS_PER_CHUNK = 4_000_000    # resampled row indices held at once (32 MB): bounds the bootstrap's memory


@dataclass(frozen=True)
class GroupStatistic:
    """A value, its bootstrap interval and its verdict against a band [low, high]."""

    value: float
    ci_low: float
    ci_high: float
    verdict: str
    group: str = ""            # the group the value belongs to (the worst one for a column)


def judge(value: float, ci_low: float, ci_high: float, low: float, high: float) -> str:
    """fail: the whole interval outside [low, high]; warn: only the point estimate; else pass."""
    if ci_low > high or ci_high < low:
        return FAIL
    if value > high or value < low:
        return WARN
    return PASS


def bootstrap_group_sums(codes: np.ndarray, groups: int, actual: np.ndarray, predicted: np.ndarray,
                         n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sample and group: count, sum actual, sum predicted, sum |error| (arrays samples x groups).

    Sample 0 is the data itself (the point estimate); samples 1..n_boot resample each
    group's members with replacement, so every sample keeps the group sizes. Each group
    draws from its own generator, so the first n samples of a longer draw are the n-sample
    draw (training stores a long draw; governance judges the first ``n_boot`` of it).
    Samples are drawn in chunks of about ``DRAWS_PER_CHUNK`` indices, so memory stays bounded
    at any group size; a chunk's size depends on the group's size only, which keeps that
    prefix property."""
    shape = (n_boot + 1, groups)
    count, total_actual, total_predicted, total_error = (np.zeros(shape) for _ in range(4))
    error = np.abs(actual - predicted)
    for code in range(groups):
        rng = np.random.default_rng([seed, code])
        rows = np.flatnonzero(codes == code)
        count[:, code] = len(rows)
        total_actual[0, code], total_predicted[0, code] = actual[rows].sum(), predicted[rows].sum()
        total_error[0, code] = error[rows].sum()
        chunk = max(1, DRAWS_PER_CHUNK // max(len(rows), 1))
        for first in range(1, n_boot + 1, chunk):
            last = min(first + chunk, n_boot + 1)
            picked = rows[rng.integers(0, len(rows), size=(last - first, len(rows)))]
            total_actual[first:last, code] = actual[picked].sum(axis=1)
            total_predicted[first:last, code] = predicted[picked].sum(axis=1)
            total_error[first:last, code] = error[picked].sum(axis=1)
    return count, total_actual, total_predicted, total_error


def column_statistics(frame: pd.DataFrame, column: str, actual: str, predicted: str, n_boot: int,
                      ci_level: float, seed: int) -> dict:
    """Per group: n, relative calibration (value, interval) and relative MAE; plus the MAE ratio samples."""
    labels, codes = group_codes(frame[column])
    sums = bootstrap_group_sums(codes, len(labels), frame[actual].to_numpy(float), frame[predicted].to_numpy(float),
                                n_boot, seed)
    return statistics_from_sums(labels, *sums, ci_level)


def group_codes(values: pd.Series) -> tuple[list[str], np.ndarray]:
    """The groups (lower-case text, sorted) and each row's group index."""
    labels, codes = np.unique(values.astype(str).str.lower().to_numpy(), return_inverse=True)
    return [str(v) for v in labels], codes


def statistics_from_sums(labels: list, count: np.ndarray, total_actual: np.ndarray, total_predicted: np.ndarray,
                         total_error: np.ndarray, ci_level: float) -> dict:
    """``column_statistics`` from the bootstrap sums alone (arrays samples x groups, sample 0 the data)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = total_predicted / total_actual
        rest = (total_predicted.sum(axis=1, keepdims=True) - total_predicted) / \
            (total_actual.sum(axis=1, keepdims=True) - total_actual)
        relative_calibration = ratio / rest
        relative_mae = total_error / total_actual           # (sum |e| / n) / (sum actual / n)
    tail = (1.0 - ci_level) / 2.0
    quantiles = lambda samples: np.quantile(samples[1:], [tail, 1.0 - tail], axis=0)  # noqa: E731
    return {"labels": [str(v) for v in labels], "n": np.asarray(count[0]).astype(int),
            "calibration": relative_calibration[0], "calibration_ci": quantiles(relative_calibration),
            "relative_mae": relative_mae[0], "relative_mae_samples": relative_mae,
            "relative_mae_ci": quantiles(relative_mae), "calibration_ratio": ratio[0],
            "tail": tail}


def calibration_verdict(stats: dict, judged: np.ndarray, low: float, high: float) -> GroupStatistic | None:
    """The judged group furthest from 1 (relative to the rest), with its interval and verdict."""
    if not judged.any():
        return None
    distance = np.where(judged, np.abs(np.log(stats["calibration"])), -np.inf)
    worst = int(np.argmax(distance))
    value, (ci_low, ci_high) = stats["calibration"][worst], stats["calibration_ci"][:, worst]
    return GroupStatistic(float(value), float(ci_low), float(ci_high),
                          judge(value, ci_low, ci_high, low, high), stats["labels"][worst])


def error_parity_verdict(stats: dict, judged: np.ndarray, maximum: float) -> GroupStatistic | None:
    """Largest / smallest relative MAE over the judged groups, its interval and verdict."""
    if judged.sum() < 2:
        return None
    samples = stats["relative_mae_samples"][:, judged]
    ratios = samples.max(axis=1) / samples.min(axis=1)
    ci_low, ci_high = np.quantile(ratios[1:], [stats["tail"], 1.0 - stats["tail"]])
    labels = np.array(stats["labels"])[judged]
    worst = f"{labels[int(np.argmax(samples[0]))]} vs {labels[int(np.argmin(samples[0]))]}"
    return GroupStatistic(float(ratios[0]), float(ci_low), float(ci_high),
                          judge(ratios[0], ci_low, ci_high, 0.0, maximum), worst)
