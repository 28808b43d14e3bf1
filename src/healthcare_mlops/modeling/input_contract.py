"""The model's input contract: the columns a caller sends and the values it accepts.

Batch inference quarantines rows that break it; the pyfunc refuses a request that
breaks it with a message naming the field (a 4xx from the scoring server).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthcare_mlops.data.contract import AGE_RANGE, BMI_RANGE, CHILDREN_RANGE, REGIONS
from healthcare_mlops.features.definitions import MODEL_INPUT_COLUMNS
from healthcare_mlops.privacy import prohibited_inputs

NUMERIC_RANGES = {"age": AGE_RANGE, "bmi": BMI_RANGE, "children": CHILDREN_RANGE}
WHOLE_NUMBERS = ("age", "children")
PROHIBITED_FIELD_RULE = ("a prohibited input (personal data, or a rating factor the ACA does not allow): "
                         "remove the field")


def _shown(value) -> str:
    """A value as a person reads it in an error: text quoted, numbers plain."""
    return repr(value) if isinstance(value, str) else str(value.item() if hasattr(value, "item") else value)


def _shown_json(value) -> str:
    """A wrong value as the caller wrote it in JSON: "the text '35'" (a number sent as text), true, 2.5."""
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    return _shown(value)


def _kind(value) -> str:
    """What a wrong value is, without the value: what a refusal to a caller says (it never
    copies what was sent back into the answer)."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bool, np.bool_)):
        return "true or false"
    return "a number" if _is_number(value) else type(value).__name__


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _as_number(series: pd.Series) -> pd.Series:
    """The values as floats, NaN where a value is not a number.

    A numeric column (a batch's) converts at once. Otherwise (a JSON request's) each value
    is judged alone: text such as "35" and booleans are not numbers, and one bad value does
    not spoil the rest of the column."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return pd.to_numeric(series, errors="coerce")
    return series.map(lambda v: float(v) if _is_number(v) else np.nan).astype(float)


def row_problems(frame: pd.DataFrame, quote_values: bool = True) -> pd.Series:
    """For each row, the first broken rule as ``"<field>: <reason>"``, or None when the row is valid.

    ``quote_values`` puts the wrong value in the reason (batch quarantine rows, read by an
    operator); without it the reason names the field and the rule only (a scoring request's
    answer, which must not copy a caller's value back, however large)."""
    problems = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    got = _shown_json if quote_values else _kind

    def after(i, column) -> str:      # ": <value>", or nothing
        return f": {_shown(frame.at[i, column])}" if quote_values else ""

    def before(i, column) -> str:     # "<value> ", or nothing
        return f"{_shown(frame.at[i, column])} " if quote_values else ""

    def flag(mask: pd.Series, message) -> None:
        fresh = mask & problems.isna()
        if fresh.any():
            problems[fresh] = [message(i) if callable(message) else message for i in frame.index[fresh]]

    for column in MODEL_INPUT_COLUMNS:
        if column not in frame.columns:
            problems[problems.isna()] = f"{column}: missing field"
            return problems
    for column, (low, high) in NUMERIC_RANGES.items():
        raw = frame[column]
        number = _as_number(raw)
        flag(raw.isna(), f"{column}: missing value")
        flag(number.isna(), lambda i, c=column: f"{c}: expected a number, got {got(frame.at[i, c])}")
        flag(~np.isfinite(number.fillna(0.0)), f"{column}: not a finite number")
        if column in WHOLE_NUMBERS:
            flag(number.notna() & (number != np.floor(number.fillna(0.0))),
                 lambda i, c=column: f"{c}: not a whole number{after(i, c)}")
        flag(number.notna() & ((number < low) | (number > high)),
             lambda i, c=column, lo=low, hi=high: f"{c}: {before(i, c)}outside {lo}-{hi}")
    smoker = frame["smoker"]
    flag(smoker.isna(), "smoker: missing value")
    flag(~smoker.map(lambda v: isinstance(v, (bool, np.bool_))),
         lambda i: f"smoker: expected true or false, got {got(frame.at[i, 'smoker'])}")
    region = frame["region"]
    flag(region.isna(), "region: missing value")
    flag(~region.isin(REGIONS), lambda i: f"region: {before(i, 'region')}is not one of {', '.join(REGIONS)}")
    return problems


def prohibited_field_problems(frame: pd.DataFrame, allowed: tuple = ()) -> pd.Series:
    """For each row, the first prohibited field it carries a value for (personal data or a
    rating factor the ACA does not allow; ``privacy.prohibited_inputs``), as ``row_problems``
    words it; ``allowed`` are fields the model was trained on."""
    problems = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for column in prohibited_inputs(c for c in frame.columns if c not in allowed):
        fresh = frame[column].notna() & problems.isna()
        problems[fresh] = f"{column}: {PROHIBITED_FIELD_RULE}"
    return problems


def typed_model_input(frame: pd.DataFrame, extra: tuple = ()) -> pd.DataFrame:
    """The model's input columns, typed (call after ``row_problems`` found none); ``extra``
    columns beyond the contract pass through as text."""
    return pd.DataFrame({
        **{column: frame[column].astype(str) for column in extra},
        "age": frame["age"].astype("int64"),
        "bmi": frame["bmi"].astype("float64"),
        "children": frame["children"].astype("int64"),
        "smoker": frame["smoker"].astype(bool),
        "region": frame["region"].astype(str),
    }, index=frame.index)
