"""Path-dependent TreeSHAP for a batch of rows, one tree at a time over the rows' distinct split patterns.

In one tree, a row's TreeSHAP values depend on the row only through the side it takes at each
split of that tree (shap's algorithm reads the row's values nowhere else: at a split it follows
the side the row takes and weighs the other side by the training cover). A boosted tree of 15
leaves splits a batch of thousands of rows into a few dozen such patterns, so each tree is
explained once per pattern, by shap's own compiled routine, and the values are spread back to
the rows. The values are shap's; only the order in which the trees' terms are added differs
from shap's per-row pass (floating-point rounding: ``tests/test_explanations.py`` bounds the gap).
Measured on the tree champion's flagged members (50,000-row batches, one thread): about 200 us
per row per-row, several times less by pattern (``benchmarks/README.md``, batch scoring).
"""

from __future__ import annotations

import numpy as np

# Rows from which the pattern pass is used: one shap call per tree costs more than it saves on
# a few rows (real-time scoring explains one member at a time).
PATTERN_MIN_ROWS = 256
_CODE_BITS = 62
_TREE_PATH_DEPENDENT, _IDENTITY = 1, 0      # shap's codes for the feature perturbation and the output transform


def pattern_pass_applies(tree_explainer, rows: int) -> bool:
    """Whether ``pattern_shap_values`` gives ``tree_explainer``'s values: a one-output model with
    numeric splits explained on its raw output, path-dependent, for at least ``PATTERN_MIN_ROWS`` rows."""
    model = tree_explainer.model
    numeric = not np.any(getattr(model, "threshold_types", 0))
    return (rows >= PATTERN_MIN_ROWS and numeric and model.num_outputs == 1 and model.get_transform() == "identity"
            and tree_explainer.feature_perturbation == "tree_path_dependent")


def split_patterns(x: np.ndarray, missing: np.ndarray | None, features: np.ndarray,
                   thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct pattern, each row's pattern) of the rows at one tree's splits.

    A row's side at a split is ``x <= threshold`` (shap's rule), a missing value its own side
    (``missing`` is None when no value of the batch is missing)."""
    sides = x[:, features] <= thresholds
    if missing is not None:
        sides = np.concatenate([sides, missing[:, features]], axis=1)
    if sides.shape[1] <= _CODE_BITS:            # one integer per pattern: a flat sort, not a row sort
        codes = sides.astype(np.int64) @ (np.int64(1) << np.arange(sides.shape[1], dtype=np.int64))
        _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(np.packbits(sides, axis=1), axis=0, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def pattern_shap_values(tree_explainer, encoded: np.ndarray) -> np.ndarray:
    """The TreeSHAP values (rows x encoded columns) of ``tree_explainer``'s model, tree by tree."""
    from shap import _cext                      # shap's compiled TreeSHAP, the same routine shap_values runs

    model = tree_explainer.model
    x = np.ascontiguousarray(encoded, dtype=model.input_dtype)
    missing = np.isnan(x)
    some_missing = missing if missing.any() else None
    width = x.shape[1]
    total = np.zeros(x.shape)
    for t in range(model.values.shape[0]):
        split = np.flatnonzero(model.children_left[t] >= 0)
        if not split.size:                      # a stump: no input moves it
            continue
        first, inverse = split_patterns(x, some_missing, model.features[t, split], model.thresholds[t, split])
        phi = np.zeros((len(first), width + 1, 1))
        one = slice(t, t + 1)
        _cext.dense_tree_shap(model.children_left[one], model.children_right[one], model.children_default[one],
                              model.features[one], model.thresholds[one], model.threshold_types[one],
                              model.values[one], model.node_sample_weight[one], model.max_depth,
                              x[first], missing[first], None, None, None, 1, model.base_offset, phi,
                              _TREE_PATH_DEPENDENT, _IDENTITY, False)
        total += phi[inverse, :width, 0]
    return total
