"""A member's contributions in words: "smoker: +23,400 USD; bmi 41.2: +9,800 USD".

The top reasons are the ``TOP_REASONS`` inputs with the largest |contribution|, amounts
rounded to 100 USD; an input whose contribution rounds to 0 is left out. A member whose
inputs fall outside the training range (``features.training_range.outside_training_range``) gets
``OUTSIDE_WORDS`` and the inputs concerned first: the model extrapolates there.

Vectorised for batch scoring: each distinct (input, value, rounded amount) phrase is
spelled once, then the phrases are taken and joined by Arrow's compute kernels (no
per-row Python).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from healthcare_mlops.explanations.contributions import BASE_COLUMN, CONTRIBUTION_PREFIX, FLOOR_COLUMN, FLOOR_LABEL
from healthcare_mlops.features.training_range import TrainingRange, outside_range_reason, outside_training_range

TOP_REASONS = 3
ROUND_TO_USD = 100
OUTSIDE_WORDS = "outside what the model was trained on"
REASONS_JOINER = "; "
_END = "\x1f"                       # a unit separator: never in an input's words
_END_PATTERN = f"({REASONS_JOINER})?\x1f$"
_AMOUNT_OFFSET = 1 << 24          # rounded amounts (in hundreds of USD) are far inside +/- this


def input_words(name: str, value) -> str:
    """An input and its value as a person says it: ``age 52``, ``bmi 41.2``, ``smoker``, ``region southeast``."""
    if name == "smoker":
        return "smoker" if str(value).lower() in ("true", "1", "yes") else "non-smoker"
    if name == "bmi":
        return f"bmi {float(value):.1f}"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return f"{name} {value}"


def amount_words(usd: float) -> str:
    """``+23,400 USD`` / ``-1,200 USD`` (rounded to 100 USD)."""
    rounded = round(float(usd) / ROUND_TO_USD) * ROUND_TO_USD
    return f"{'+' if rounded >= 0 else '-'}{abs(rounded):,.0f} USD"


def _phrase_ids(inputs: pd.DataFrame, contributions: np.ndarray, names: tuple) -> tuple[np.ndarray, list[str]]:
    """(rows x inputs) ids into the phrase table; id 0 is '' (a contribution that rounds to 0)."""
    table, ids = [""], np.zeros(contributions.shape, dtype=np.int64)
    for j, name in enumerate(names):
        shown = inputs[name].round(1) if name == "bmi" else inputs[name]      # as the words show it
        value_codes, values = pd.factorize(shown, sort=False)
        amounts = np.rint(contributions[:, j] / ROUND_TO_USD).astype(np.int64)
        keys, distinct = pd.factorize(value_codes.astype(np.int64) * (2 * _AMOUNT_OFFSET) + amounts + _AMOUNT_OFFSET)
        spelled = []
        for key in distinct:
            value, amount = divmod(int(key), 2 * _AMOUNT_OFFSET)
            amount -= _AMOUNT_OFFSET
            spelled.append(f"{input_words(name, values[value])}: {amount_words(amount * ROUND_TO_USD)}"
                           if amount else "")
        ids[:, j] = np.where(amounts != 0, keys + len(table), 0)
        table.extend(spelled)
    return ids, table


def _present(words: pa.Array) -> pa.Array:
    """'' as null, so that joining skips it."""
    return pc.if_else(pc.equal(words, ""), pa.scalar(None, pa.string()), words)


def join_words(*columns: pa.Array) -> pa.Array:
    """Row by row the non-empty texts of ``columns`` joined by ``REASONS_JOINER`` ('' when none); in Arrow.

    A last column that is never empty (``_END``) is joined too and cut off after: pyarrow's
    ``binary_join_element_wise`` with ``skip`` drops a row whose inputs are all null instead of
    giving '' (seen with pyarrow 25), which would shift every later row."""
    rows = len(columns[0])
    end = pa.array(np.full(rows, _END, dtype=object), type=pa.string())
    joined = pc.binary_join_element_wise(*[_present(c) for c in columns], end, REASONS_JOINER, null_handling="skip")
    return pc.replace_substring_regex(joined, _END_PATTERN, "")


def top_reasons(inputs: pd.DataFrame, contributions: np.ndarray, names: tuple,
                outside: np.ndarray | None = None) -> pa.Array:
    """Per row, the top reasons in words (``REASONS_JOINER`` between them), the outside flag first.

    An Arrow string array: the phrases are taken and joined in Arrow's compute kernels."""
    rows = len(contributions)
    if rows == 0:
        return pa.array([], type=pa.string())
    ids, table = _phrase_ids(inputs, contributions, names)
    phrases = pa.array(table, type=pa.string())
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :TOP_REASONS]
    picked = np.take_along_axis(ids, order, axis=1)
    columns = [phrases.take(pa.array(picked[:, k])) for k in range(picked.shape[1])]
    if outside is not None and np.asarray(outside).any():
        bits = np.asarray(outside, dtype=np.int64) @ (np.int64(1) << np.arange(len(names), dtype=np.int64))
        flags = pa.array([f"{OUTSIDE_WORDS}: " + ", ".join(n for b, n in enumerate(names) if (pattern >> b) & 1)
                          if pattern else "" for pattern in range(1 << len(names))], type=pa.string())
        columns.insert(0, flags.take(pa.array(bits)))
    return join_words(*columns)


def outside_matrix(inputs: pd.DataFrame, training_range: TrainingRange | None, names: tuple) -> np.ndarray:
    """(rows x inputs) True where the input lies outside the training range (the rule's own test)."""
    masks = dict(outside_training_range(inputs[[n for n in names if n in inputs.columns]],
                                        training_range or TrainingRange()))
    empty = np.zeros(len(inputs), dtype=bool)
    return np.column_stack([np.asarray(masks.get(outside_range_reason(n), empty), dtype=bool) for n in names]) \
        if names else np.zeros((len(inputs), 0), dtype=bool)


def waterfall_steps(member: dict, names: tuple) -> pd.DataFrame:
    """``label, usd, kind`` from the base to the reported prediction, one step per input and the floor.

    ``member`` holds the inputs, ``base_charges``, ``contribution_<input>``, ``floor_adjustment``
    and ``predicted_annual_charges`` (a predictions row, or a real-time answer with reasons).
    """
    steps = [{"label": "base (average member)", "usd": float(member[BASE_COLUMN]), "kind": "absolute"}]
    for name in names:
        steps.append({"label": input_words(name, member[name]),
                      "usd": float(member[f"{CONTRIBUTION_PREFIX}{name}"]), "kind": "relative"})
    if abs(float(member[FLOOR_COLUMN])) >= 0.005:
        steps.append({"label": FLOOR_LABEL, "usd": float(member[FLOOR_COLUMN]), "kind": "relative"})
    steps.append({"label": "predicted charges", "usd": float(member["predicted_annual_charges"]), "kind": "total"})
    return pd.DataFrame(steps)
