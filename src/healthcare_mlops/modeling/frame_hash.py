"""A fingerprint of a training frame that does not depend on how the rows arrived.

Canonical form: the columns training reads (member key, model inputs, label, fairness
group columns) in sorted name order, each cast to one dtype per kind (numbers float64,
flags bool, everything else text), rows sorted by member key. The hash is sha256 over
each column's name, kind and values in that form, so the same members with the same
values give the same hash whatever the row order, file order, Spark partitioning or
as-of date of the load, and a changed value anywhere gives another.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from healthcare_mlops.features.definitions import FAIRNESS_GROUP_COLUMNS, LABEL_COLUMN, MODEL_INPUT_COLUMNS
from healthcare_mlops.modeling.splits import MEMBER_KEY

HASH_ALGORITHM = "sha256"
_NULL = "\x00"          # a missing text value, distinct from the empty string
_SEPARATOR = "\x1f"


def hashed_columns(frame: pd.DataFrame, inputs=MODEL_INPUT_COLUMNS) -> list[str]:
    """The columns training reads that ``frame`` holds, in sorted order."""
    wanted = {MEMBER_KEY, LABEL_COLUMN, *inputs, *FAIRNESS_GROUP_COLUMNS}
    return sorted(c for c in frame.columns if c in wanted)


def _canonical(values: pd.Series) -> tuple[str, bytes]:
    """(kind, bytes) of one column in its canonical form."""
    if pd.api.types.is_bool_dtype(values):
        return "bool", values.astype(bool).to_numpy().tobytes()
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64").to_numpy(copy=True)
        numbers[np.isnan(numbers)] = np.nan          # one NaN bit pattern
        return "float64", numbers.tobytes()
    text = [_NULL if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
    return "text", _SEPARATOR.join(text).encode()


def frame_hash(frame: pd.DataFrame, inputs=MODEL_INPUT_COLUMNS) -> str:
    """``sha256:<hex>`` of the labelled rows' canonical form (see the module docstring)."""
    labelled = frame[frame[LABEL_COLUMN].notna()] if LABEL_COLUMN in frame.columns else frame
    ordered = labelled.assign(_key=labelled[MEMBER_KEY].astype(str)).sort_values("_key", kind="stable")
    digest = hashlib.sha256()
    digest.update(str(len(ordered)).encode())
    for column in hashed_columns(frame, inputs):
        kind, payload = _canonical(ordered[column].reset_index(drop=True))
        digest.update(f"{_SEPARATOR}{column}{_SEPARATOR}{kind}{_SEPARATOR}".encode())
        digest.update(hashlib.sha256(payload).digest())
    return f"{HASH_ALGORITHM}:{digest.hexdigest()}"
