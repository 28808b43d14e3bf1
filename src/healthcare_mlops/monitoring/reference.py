"""A registered model version's training reference, as monitoring judges against it.

Training logs two artifacts per version (modeling/artifacts.py names them): ``reference/
training_reference.json`` (deciles, shares, prediction deciles, feature importances: each
input's mean |contribution|, normalised; the composite drift score's weights) and
``reference/reference_counts.parquet`` (up to 100k training rows counted per monitored
column, rounded value and bin, ``drift.reference_counts``: the model inputs, sex, age band
and the out-of-fold prediction, each on its own; no member rows). The risk score's
reference quantiles travel inside the pyfunc (``prediction_reference`` /
``actual_reference``). Reading them from the registry is the runtime's
(``runtime/monitoring_reference.py``); this module checks what was read.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from healthcare_mlops.errors import UserError

REFERENCE_KEYS = ("numeric", "categorical", "feature_importances", "prediction")


@dataclass
class ModelReference:
    model_name: str
    version: str
    run_id: str
    reference: dict
    counts: pd.DataFrame      # the training rows' counts per column, value and bin


def check_reference(reference: dict, where: str) -> dict:
    missing = [k for k in REFERENCE_KEYS if not reference.get(k)]
    if missing:
        raise UserError(f"the training reference of {where} lacks {', '.join(missing)}")
    return reference


def model_reference(model_name: str, version: str, run_id: str, reference: dict,
                    counts: pd.DataFrame) -> ModelReference:
    """The reference of ``model_name`` ``version``, refused when it lacks a part or counts nothing."""
    where = f"{model_name} version {version}"
    check_reference(reference, where)
    if counts.empty:
        raise UserError(f"the reference counts of {where} are empty")
    return ModelReference(model_name, str(version), run_id, reference, counts)
