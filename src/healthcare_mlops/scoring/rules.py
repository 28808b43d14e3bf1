"""The business rules of batch scoring, defined once: numbers and frames in, flags out.

They run on the model's output for each member (``modeling/pyfunc.py``), after the
member's features passed the model's input contract. The thresholds are the bundle
variables ``min_predicted_charges`` and ``review_interval_width_ratio`` (databricks.yml,
overridable per target or per run; required, like every threshold); the training range (``features/training_range.py``) is the champion's own training
reference (``reference/training_reference.json`` in its MLflow run).

| rule | setting | effect | reason code |
|---|---|---|---|
| minimum predicted cost | ``min_predicted_charges`` (USD) | a prediction below it is raised to it; the interval's upper bound too when it was below, so lower <= predicted <= upper still holds; the member is flagged for review | ``below_minimum_charges`` |
| critical risk | ``RiskBand.CRITICAL`` (risk score >= 95) | ``high_risk`` (``tables.IS_CRITICAL_RISK``) = true; flagged | ``critical_risk`` |
| low confidence | ``review_interval_width_ratio`` | (upper - lower) / predicted > ratio, on the floored values; exactly at the ratio is not flagged | ``low_confidence`` |
| outside the training range | the model version's training reference | a numeric input below the smallest or above the largest value seen in training (the edges themselves are inside), or a category never seen in training | ``outside_training_range:<column>`` |

``requires_review`` is true when at least one reason applies; ``review_reasons`` lists the
reason codes in the order of the table above (columns in model-input order), joined by
``scoring.contract.REASON_SEPARATOR``, and is ``''`` when there is none.

The risk score and category stay the model's: the floor is a pricing rule on the amount,
not a change of the member's rank (a prediction under the floor is at the bottom of the
reference distribution either way), and the reason code says the amount was raised.
Real-time scoring returns the model's output without these rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.features.definitions import MODEL_INPUT_COLUMNS
from healthcare_mlops.features.training_range import TrainingRange, outside_training_range
from healthcare_mlops.modeling.risk import HIGH_RISK_CATEGORY
from healthcare_mlops.scoring.contract import REASON_SEPARATOR
from healthcare_mlops.tables import IS_CRITICAL_RISK


BELOW_MINIMUM = "below_minimum_charges"
CRITICAL_RISK = "critical_risk"
LOW_CONFIDENCE = "low_confidence"

RULE_COLUMNS = ("predicted_annual_charges", "interval_lower", "interval_upper", IS_CRITICAL_RISK,
                "requires_review", "review_reasons")


@dataclass(frozen=True)
class ScoringThresholds:
    """The scoring rules' thresholds, the bundle variables of their names (``parameters.scoring_thresholds``)."""

    min_predicted_charges: float
    review_interval_width_ratio: float

    def __post_init__(self):
        for name in ("min_predicted_charges", "review_interval_width_ratio"):
            if getattr(self, name) < 0:
                raise UserError(f"scoring threshold '{name}' must be >= 0, not {getattr(self, name)!r}")


@dataclass(frozen=True)
class BusinessRules:
    thresholds: ScoringThresholds
    training_range: TrainingRange = field(default_factory=TrainingRange)

    @classmethod
    def for_model(cls, thresholds: ScoringThresholds, reference: dict | None = None) -> "BusinessRules":
        """The rules for one model version: the thresholds (``parameters.scoring_thresholds``) and the
        version's training range, from its training reference."""
        return cls(thresholds, TrainingRange.from_reference(reference))


def join_reasons(flags: list[tuple[str, np.ndarray]], rows: int) -> np.ndarray:
    """Per row, the codes whose mask is set, in order, joined by REASON_SEPARATOR ('' when none).

    Vectorised: each row's set of reasons is a bit pattern, and each pattern that occurs
    is spelled once.
    """
    if not flags:
        return np.full(rows, "", dtype=object)
    codes = [code for code, _ in flags]
    masks = np.column_stack([np.asarray(mask, dtype=bool) for _, mask in flags])
    patterns = masks.astype(np.int64) @ (np.int64(1) << np.arange(len(codes), dtype=np.int64))
    distinct, index = np.unique(patterns, return_inverse=True)
    spelled = np.array([REASON_SEPARATOR.join(code for bit, code in enumerate(codes) if (pattern >> bit) & 1)
                        for pattern in distinct.tolist()], dtype=object)
    return spelled[index.reshape(-1)]


def apply_rules(scored: pd.DataFrame, inputs: pd.DataFrame, rules: BusinessRules) -> pd.DataFrame:
    """The rules on the model's output ``scored`` for the members whose model inputs are ``inputs``.

    Returns ``RULE_COLUMNS`` on ``scored``'s index: the (floored) prediction and interval,
    ``IS_CRITICAL_RISK``, ``requires_review`` and ``review_reasons``.
    """
    raw = scored["predicted_annual_charges"].to_numpy(dtype=float)
    floor = rules.thresholds.min_predicted_charges
    below = raw < floor
    predicted = np.where(below, floor, raw)
    lower = scored["interval_lower"].to_numpy(dtype=float)
    upper = np.maximum(scored["interval_upper"].to_numpy(dtype=float), predicted)
    critical = scored["risk_category"].to_numpy() == HIGH_RISK_CATEGORY
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(predicted > 0, width / np.where(predicted > 0, predicted, 1.0),
                         np.where(width > 0, np.inf, 0.0))
    low_confidence = ratio > rules.thresholds.review_interval_width_ratio
    columns = [c for c in MODEL_INPUT_COLUMNS if c in inputs.columns]
    flags = [(BELOW_MINIMUM, below), (CRITICAL_RISK, critical), (LOW_CONFIDENCE, low_confidence),
             *outside_training_range(inputs[columns], rules.training_range)]
    reasons = join_reasons(flags, len(scored))
    return pd.DataFrame({
        "predicted_annual_charges": predicted,
        "interval_lower": lower,
        "interval_upper": upper,
        IS_CRITICAL_RISK: critical,
        "requires_review": reasons != "",
        "review_reasons": reasons,
    }, index=scored.index)
