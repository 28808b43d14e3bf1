"""The risk score and its categories (docs/definitions.md), defined once.

Risk score (0-100): 100 x the percentile rank of a member's predicted annual charges
within the reference distribution of predictions on the training set. A reference is
stored as its quantiles on a fixed grid, so it is compact and the same everywhere.
"""

from __future__ import annotations

from enum import Enum

import numpy as np


class RiskBand(str, Enum):
    """A member's risk category; tables store its value (``risk_category``)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


# (lower bound inclusive, category): low < 50 <= medium < 80 <= high < 95 <= critical.
RISK_CATEGORIES = ((0.0, RiskBand.LOW.value), (50.0, RiskBand.MEDIUM.value), (80.0, RiskBand.HIGH.value),
                   (95.0, RiskBand.CRITICAL.value))
# A high-risk member is one in the critical band (tables.IS_CRITICAL_RISK flags it).
HIGH_RISK_CATEGORY = RiskBand.CRITICAL.value
# The evidence column "the member's risk band is critical" (1/0): not a band, not a severity.
CRITICAL_FLAG = "critical"
HIGH_RISK_SHARE = 0.05          # the actual top 5 % by charges, for high-risk capture
REFERENCE_GRID = np.linspace(0.0, 100.0, 1001)


def reference_quantiles(values) -> np.ndarray:
    """The reference distribution as quantiles on REFERENCE_GRID (percent)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("a reference distribution needs at least one finite value")
    return np.percentile(values, REFERENCE_GRID)


def risk_score(values, quantiles) -> np.ndarray:
    """100 x percentile rank of ``values`` within the reference ``quantiles``, in [0, 100]."""
    values = np.asarray(values, dtype=float)
    quantiles = np.asarray(quantiles, dtype=float)
    return np.clip(np.interp(values, quantiles, REFERENCE_GRID, left=0.0, right=100.0), 0.0, 100.0)


def risk_category(scores) -> np.ndarray:
    """low / medium / high / critical for each score."""
    bounds = np.array([lower for lower, _ in RISK_CATEGORIES])
    labels = np.array([label for _, label in RISK_CATEGORIES], dtype=object)
    index = np.searchsorted(bounds, np.asarray(scores, dtype=float), side="right") - 1
    return labels[np.clip(index, 0, len(labels) - 1)]
