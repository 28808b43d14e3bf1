"""The small final arithmetic of monitoring: numbers in, numbers out (numpy and scipy, no Spark).

Spark reduces a batch of any size to a few hundred counts (per bin, per distinct value);
these functions turn those counts into the statistics of docs/definitions.md:

- ``psi``: population stability index over bins, both share vectors floored at 1e-4
  (not renormalised, the usual convention and Evidently's), ``sum((a - e) * ln(a / e))``.
- ``js_distance``: Jensen-Shannon distance, base 2 (in [0, 1]), from two count or share
  vectors, exactly ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
- ``ks_from_counts``: the two-sample Kolmogorov-Smirnov statistic from the counts of each
  sample at each distinct value of the union, and its two-sided p-value by scipy's
  ``method='asymp'``: ``kstwo.sf(D, round(n1 * n2 / (n1 + n2)))``. The statistic is
  exactly ``ks_2samp``'s (the empirical CDFs evaluated at every value of the union, ties
  included); the p-value is exactly ``ks_2samp(..., method='asymp')``'s (except for two
  single-row samples, where scipy's ``round(0.5) = 0`` gives nan and we use n = 1). The
  'exact' method is O(n1 * n2) and scipy itself switches to 'asymp' above 10,000 rows.
- ``wasserstein_from_counts``: Wasserstein-1 distance, the area between the two empirical
  CDFs over the union of values, exactly ``scipy.stats.wasserstein_distance``; divided
  by the reference standard deviation (``wasserstein_norm``) so it reads in units of sd.
- ``chi_square``: Pearson's chi-square of current category counts against the reference
  shares (floored like PSI, renormalised so that the expected counts sum to the observed),
  exactly ``scipy.stats.chisquare(observed, expected)``.

Bins (``numeric_edges`` / ``categorical_bins``): a numeric column is cut at the reference's
interior deciles into at most 10 right-closed bins ``(-inf, d1], (d1, d2], ..., (d9, inf)``;
tied deciles (children: 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 5) collapse into one edge, so children
gets one bin per value 0, 1, 2, 3 and one for 4+. A categorical column gets one bin per
reference category plus ``unseen`` and ``missing``; numeric columns get a ``missing`` bin
too. ``assign_numeric_bins`` is the numpy twin of the Spark ``CASE`` in drift.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHARE_FLOOR = 1e-4
UNSEEN, MISSING = "unseen", "missing"
MISSING_BIN = -1          # the bin index Spark gives a null (or NaN) value


def shares(counts) -> np.ndarray:
    """Counts as shares of their total (all zeros when the total is zero)."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def psi(expected_shares, actual_shares, floor: float = SHARE_FLOOR) -> float:
    """Population stability index of ``actual`` against ``expected`` (shares per bin)."""
    expected = np.maximum(np.asarray(expected_shares, dtype=float), floor)
    actual = np.maximum(np.asarray(actual_shares, dtype=float), floor)
    if expected.shape != actual.shape:
        raise ValueError(f"share vectors differ in length: {expected.shape} vs {actual.shape}")
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_band(value: float, moderate: float, significant: float) -> str:
    """stable (< moderate), moderate, significant (> significant) for people."""
    if value > significant:
        return "significant"
    if value >= moderate:
        return "moderate"
    return "stable"


def js_distance(p, q) -> float:
    """Jensen-Shannon distance, base 2, of two count or share vectors (normalised first)."""
    p, q = shares(p), shares(q)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    m = (p + q) / 2.0
    from scipy import special   # scipy.stats takes ~0.4 s to import: only when a statistic is computed

    divergence = (np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))) / 2.0
    return float(np.sqrt(max(divergence, 0.0) / np.log(2.0)))


@dataclass(frozen=True)
class KsResult:
    statistic: float
    pvalue: float


def _sorted_union(values, reference_counts, current_counts):
    values = np.asarray(values, dtype=float)
    reference_counts = np.asarray(reference_counts, dtype=float)
    current_counts = np.asarray(current_counts, dtype=float)
    if not (values.shape == reference_counts.shape == current_counts.shape):
        raise ValueError("values and both count vectors must have the same length")
    order = np.argsort(values, kind="stable")
    return values[order], reference_counts[order], current_counts[order]


def ks_from_counts(values, reference_counts, current_counts) -> KsResult:
    """Two-sample KS statistic and asymptotic two-sided p-value from counts per distinct value.

    ``values`` are the distinct values of the union of both samples (any order); the
    counts say how often each sample holds each value.
    """
    _, ref, cur = _sorted_union(values, reference_counts, current_counts)
    n1, n2 = int(round(ref.sum())), int(round(cur.sum()))
    if n1 == 0 or n2 == 0:
        return KsResult(float("nan"), float("nan"))
    cdf1 = np.cumsum(ref) / n1
    cdf2 = np.cumsum(cur) / n2
    statistic = float(np.max(np.abs(cdf1 - cdf2)))
    # as scipy.stats.ks_2samp(method="asymp"), two-sided
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = max(np.round(m * n / (m + n)), 1.0)
    from scipy.stats import kstwo

    pvalue = float(np.clip(kstwo.sf(statistic, en), 0.0, 1.0))
    return KsResult(statistic, pvalue)


def wasserstein_from_counts(values, reference_counts, current_counts) -> float:
    """Wasserstein-1 distance: the area between the two empirical CDFs over the union of values."""
    values, ref, cur = _sorted_union(values, reference_counts, current_counts)
    n1, n2 = ref.sum(), cur.sum()
    if n1 == 0 or n2 == 0:
        return float("nan")
    if len(values) < 2:
        return 0.0
    cdf1 = np.cumsum(ref)[:-1] / n1
    cdf2 = np.cumsum(cur)[:-1] / n2
    return float(np.sum(np.abs(cdf1 - cdf2) * np.diff(values)))


def normalised_wasserstein(distance: float, reference_std: float) -> float:
    """The distance in units of the reference's standard deviation (nan when the sd is 0)."""
    if not reference_std or not np.isfinite(reference_std) or reference_std <= 0:
        return float("nan")
    return float(distance / reference_std)


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    pvalue: float
    dof: int


def chi_square(observed_counts, reference_shares, floor: float = SHARE_FLOOR) -> ChiSquareResult:
    """Pearson's chi-square goodness of fit of ``observed_counts`` to the reference shares.

    Reference shares are floored like PSI's (a category the reference never saw must not
    give an infinite statistic) and renormalised so that expected and observed totals match.
    """
    observed = np.asarray(observed_counts, dtype=float)
    expected_shares = np.maximum(np.asarray(reference_shares, dtype=float), floor)
    total = observed.sum()
    if total == 0 or len(observed) < 2:
        return ChiSquareResult(float("nan"), float("nan"), max(len(observed) - 1, 0))
    expected = total * expected_shares / expected_shares.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    dof = len(observed) - 1
    from scipy.stats import chi2 as chi2_distribution

    return ChiSquareResult(statistic, float(chi2_distribution.sf(statistic, dof)), dof)


# -- bins ------------------------------------------------------------------------------------
def numeric_edges(deciles) -> tuple[float, ...]:
    """The distinct interior deciles: right-closed bin edges (tied deciles collapse)."""
    deciles = np.asarray(deciles, dtype=float)
    if deciles.size < 3:
        raise ValueError("deciles need at least a minimum, one interior point and a maximum")
    return tuple(float(v) for v in np.unique(deciles[1:-1]))


def numeric_bin_labels(edges) -> list[str]:
    """Human labels of the bins ``(-inf, e1]``, ``(e1, e2]``, ..., ``(ek, inf)``."""
    labels, previous = [], "-inf"
    for edge in edges:
        labels.append(f"({previous}, {edge:g}]")
        previous = f"{edge:g}"
    labels.append(f"({previous}, inf)")
    return labels


def assign_numeric_bins(values, edges) -> np.ndarray:
    """Bin index of each value (0 .. len(edges)); MISSING_BIN for null or NaN."""
    values = np.asarray(values, dtype=float)
    index = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    return np.where(np.isnan(values), MISSING_BIN, index)


def categorical_bins(categories) -> list[str]:
    """One bin per reference category, then ``unseen`` and ``missing``."""
    return [*categories, UNSEEN, MISSING]


def bin_counts(bin_index, counts, n_bins: int) -> np.ndarray:
    """Counts per bin: ``n_bins`` regular bins followed by the missing bin."""
    bin_index = np.asarray(bin_index, dtype=int)
    counts = np.asarray(counts, dtype=float)
    slots = np.where(bin_index == MISSING_BIN, n_bins, bin_index)
    return np.bincount(slots, weights=counts, minlength=n_bins + 1)[: n_bins + 1]
