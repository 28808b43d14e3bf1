"""The training range: the values each model input took in training, and which inputs fall outside it.

A fact of one trained model version (its ``training_reference.json``), read by the batch
scoring rules (``scoring/rules.py``: the ``outside_training_range:<column>`` reason code), the
explanations (``explanations/reasons.py``) and training itself, which hands it to the
explainer. It sits with the feature definitions, below all three, so none of them imports
another's internals for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from healthcare_mlops.features.definitions import MODEL_INPUT_COLUMNS

OUTSIDE_TRAINING_RANGE = "outside_training_range"


def outside_range_reason(column: str) -> str:
    return f"{OUTSIDE_TRAINING_RANGE}:{column}"


@dataclass(frozen=True)
class TrainingRange:
    """The values each model input took in training: numeric [min, max] and the categories seen."""

    numeric: dict = field(default_factory=dict)        # column -> (min, max)
    categories: dict = field(default_factory=dict)     # column -> frozenset of lower-case labels

    @classmethod
    def from_reference(cls, reference: dict | None, columns=MODEL_INPUT_COLUMNS) -> "TrainingRange":
        """From a model version's ``training_reference.json`` (see ``modeling.training``)."""
        reference = reference or {}
        numeric = {c: (float(v["min"]), float(v["max"])) for c, v in (reference.get("numeric") or {}).items()
                   if c in columns and "min" in v and "max" in v}
        categories = {c: frozenset(str(k).lower() for k in shares)
                      for c, shares in (reference.get("categorical") or {}).items() if c in columns}
        return cls(numeric=numeric, categories=categories)


def _unseen(values: pd.Series, seen: frozenset) -> np.ndarray:
    """Which values are not among the training categories (compared as ``str(value).lower()``)."""
    if values.dtype == bool:
        labels = np.array(["false", "true"], dtype=object)[values.to_numpy().astype(np.int8)]
        return ~np.isin(labels, list(seen))
    unseen = ~values.isin(seen).to_numpy()          # most values are spelled as in training
    if unseen.any():
        unseen[unseen] = ~values[unseen].astype(str).str.lower().isin(seen).to_numpy()
    return unseen


def outside_training_range(inputs: pd.DataFrame, training_range: TrainingRange) -> list[tuple[str, np.ndarray]]:
    """(reason code, mask) per model input the training range knows, in model-input order."""
    flags = []
    for column in inputs.columns:
        if column in training_range.numeric:
            low, high = training_range.numeric[column]
            values = inputs[column].to_numpy(dtype=float)
            flags.append((outside_range_reason(column), (values < low) | (values > high)))
        elif column in training_range.categories:
            flags.append((outside_range_reason(column), _unseen(inputs[column], training_range.categories[column])))
    return flags
