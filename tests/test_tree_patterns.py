"""TreeSHAP by split pattern (explanations/tree_patterns.py) gives shap's own per-row values."""

from __future__ import annotations

import numpy as np
import pytest
import shap
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from threadpoolctl import threadpool_limits

from healthcare_mlops.explanations.tree_patterns import (PATTERN_MIN_ROWS, pattern_pass_applies,
                                                         pattern_shap_values)


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.integers(18, 65, rows), rng.normal(30, 6, rows), rng.integers(0, 6, rows),
                         rng.integers(0, 2, rows), rng.uniform(0, 1, rows)]).astype(float)
    y = 250 * x[:, 0] + 300 * x[:, 1] + 20_000 * x[:, 3] * (x[:, 1] > 30) + rng.normal(0, 2_000, rows)
    return x, y


def _fitted(model, x: np.ndarray, y: np.ndarray):
    """``model`` fitted on one OpenMP thread (on a busy machine more threads spin for tens of seconds)."""
    with threadpool_limits(1):
        return model.fit(x, y)


def _hostile_rows(explainer, x: np.ndarray) -> np.ndarray:
    """Rows whose values sit exactly on the model's thresholds (the side a tie takes is the rule under test)."""
    model = explainer.model
    rows = x[:PATTERN_MIN_ROWS * 2].copy()
    split = model.children_left >= 0
    for feature in range(x.shape[1]):
        thresholds = model.thresholds[split & (model.features == feature)]
        if thresholds.size:
            rows[::3, feature] = np.resize(thresholds, rows[::3, feature].shape)
    return rows


def _assert_shaps(explainer, rows: np.ndarray) -> None:
    expected = np.asarray(explainer.shap_values(rows, check_additivity=False), dtype=float)
    got = pattern_shap_values(explainer, rows)
    assert got.shape == expected.shape
    # the same terms added in another order: rounding only, far below a cent
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-6)


@pytest.fixture(scope="module")
def boosted():
    x, y = _data(3_000, 1)
    model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=80, max_leaf_nodes=15, random_state=1)
    return shap.TreeExplainer(_fitted(model, x, y)), x


def test_boosted_trees_by_pattern_match_shap_per_row_on_rows_at_the_thresholds(boosted):
    explainer, x = boosted
    rows = _hostile_rows(explainer, x)
    assert pattern_pass_applies(explainer, len(rows))
    _assert_shaps(explainer, rows)


def test_missing_values_take_the_trees_default_side_as_shap_does():
    x, y = _data(3_000, 2)
    x[::7, 1] = np.nan
    explainer = shap.TreeExplainer(_fitted(HistGradientBoostingRegressor(max_iter=40, random_state=2), x, y))
    rows = x[:600].copy()
    rows[::5, 0] = np.nan
    _assert_shaps(explainer, rows)


def test_deep_trees_with_more_splits_than_an_integer_holds_match_shap_per_row():
    x, y = _data(2_000, 3)
    forest = _fitted(RandomForestRegressor(n_estimators=5, max_depth=9, random_state=3), x, y)
    explainer = shap.TreeExplainer(forest)
    assert (explainer.model.children_left >= 0).sum(axis=1).max() > 62     # the packed-bits path
    _assert_shaps(explainer, _hostile_rows(explainer, x))


def test_a_rows_values_do_not_depend_on_the_other_rows_of_the_batch(boosted):
    """Batch scoring explains only flagged members: a member's explanation must not change with who else is in
    its batch (bit for bit), so that explaining the flagged ones equals explaining everyone."""
    explainer, x = boosted
    everyone = pattern_shap_values(explainer, x[:2_000])
    some = np.arange(0, 2_000, 3)
    assert np.array_equal(pattern_shap_values(explainer, x[some]), everyone[some])


def test_a_few_rows_go_through_shap_per_row(boosted):
    explainer, _ = boosted
    assert not pattern_pass_applies(explainer, PATTERN_MIN_ROWS - 1)
    assert pattern_pass_applies(explainer, PATTERN_MIN_ROWS)
