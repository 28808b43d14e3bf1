"""A member's contributions in words: "smoker: +23,400 USD; bmi 41.2: +9,800 USD".

The top reasons are the ``TOP_REASONS`` inputs with the largest |contribution|, amounts
rounded to 100 USD; an input whose contribution rounds to 0 is left out. A member whose
inputs fall outside the training range (``scoring.rules.outside_training_range``) gets
``OUTSIDE_WORDS`` and the inputs concerned first: the model extrapolates there.

Vectorised for batch scoring: each distinct (input, value, rounded amount) phrase is
spelled once, and each distinct combination of phrases once (no per-row Python).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthcare_mlops.explanations.contributions import (BASE_COLUMN, CONTRIBUTION_PREFIX, FLOOR_COLUMN,
                                                         FLOOR_LABEL, OUTSIDE_COLUMN, TOP_REASONS_COLUMN)
from healthcare_mlops.scoring.rules import TrainingRange, outside_training_range, outside_range_reason

TOP_REASONS = 3
ROUND_TO_USD = 100
OUTSIDE_WORDS = "outside what the model was trained on"
REASONS_JOINER = "; "
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
        value_codes, values = pd.factorize(inputs[name], sort=False)
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


def _combine(codes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One id per row for a (rows x k) array of ids below ``width``: (ids, the distinct rows)."""
    combined = np.zeros(len(codes), dtype=np.int64)
    for k in range(codes.shape[1]):
        combined, _ = pd.factorize(combined * width + codes[:, k])
    distinct_rows = np.zeros((combined.max() + 1 if len(combined) else 0, codes.shape[1]), dtype=np.int64)
    distinct_rows[combined] = codes
    return combined, distinct_rows


def top_reasons(inputs: pd.DataFrame, contributions: np.ndarray, names: tuple,
                outside: np.ndarray | None = None) -> np.ndarray:
    """Per row, the top reasons in words (``REASONS_JOINER`` between them), the outside flag first."""
    rows = len(contributions)
    if rows == 0:
        return np.array([], dtype=object)
    ids, table = _phrase_ids(inputs, contributions, names)
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :TOP_REASONS]
    picked = np.take_along_axis(ids, order, axis=1)
    outside = np.zeros((rows, len(names)), dtype=bool) if outside is None else np.asarray(outside, dtype=bool)
    bits = outside.astype(np.int64) @ (np.int64(1) << np.arange(len(names), dtype=np.int64))
    width = max(len(table), 1 << len(names))
    combined, distinct = _combine(np.column_stack([picked, bits]), width)
    spelled = []
    for *phrase_ids, pattern in distinct.tolist():
        parts = [table[i] for i in phrase_ids if i]
        flagged = [name for bit, name in enumerate(names) if (pattern >> bit) & 1]
        if flagged:
            parts.insert(0, f"{OUTSIDE_WORDS}: {', '.join(flagged)}")
        spelled.append(REASONS_JOINER.join(parts))
    return np.array(spelled, dtype=object)[combined]


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
