"""The label-free MAE estimate (DLE) across seeds: it follows covariate shift and says it cannot see a price change.

The windows (scenario-shaped, with their realised MAE) are those of
benchmarks/estimate_accuracy.py, the command whose figures README's model-quality section gives.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from healthcare_mlops.data.synthetic import synthetic_members
from healthcare_mlops.monitoring.performance_estimate import EstimateParams, estimate_mae, fit_loss_model
from healthcare_mlops.tables import MODEL_INPUT_COLUMNS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from estimate_accuracy import one_seed  # noqa: E402

SEEDS = range(6)


@pytest.fixture(scope="module")
def seeds() -> list[dict]:
    return [one_seed(seed) for seed in SEEDS]


@pytest.mark.slow
def test_under_covariate_shift_the_estimate_moves_the_right_way_and_covers_the_realised_mae(seeds):
    for scenario in ("smoker_surge", "aging"):
        moved = [(r[scenario][0].value - r["baseline"][0].value) * (r[scenario][1] - r["baseline"][1]) > 0
                 for r in seeds]
        covered = [r[scenario][0].covers(r[scenario][1]) for r in seeds]
        assert all(r[scenario][1] > r["baseline"][1] for r in seeds), scenario      # the shift does raise the error
        assert sum(moved) == len(seeds), (scenario, moved)
        assert sum(covered) >= 0.8 * len(seeds), (scenario, [(r[scenario][0], r[scenario][1]) for r in seeds])
    assert sum(r["baseline"][0].covers(r["baseline"][1]) for r in seeds) >= 0.8 * len(seeds)


@pytest.mark.slow
def test_a_price_level_change_is_invisible_to_the_estimate(seeds):
    """Charges x1.25 with the same inputs: the realised MAE rises, the estimate stays at the baseline's."""
    for r in seeds:
        estimate, realised = r["cost_inflation"]
        assert realised > 1.1 * r["baseline"][1]
        assert abs(estimate.value - r["baseline"][0].value) < 0.05 * r["baseline"][0].value
    assert sum(r["cost_inflation"][0].covers(r["cost_inflation"][1]) for r in seeds) <= len(seeds) // 3


def test_the_estimate_refuses_a_small_reference_and_an_empty_window_is_unknown():
    frame = pd.DataFrame(synthetic_members(100, np.random.default_rng(1))).assign(predicted=10000.0)
    with pytest.raises(ValueError, match="at least 200"):
        fit_loss_model(frame, tuple(MODEL_INPUT_COLUMNS), "predicted", "annual_charges")
    big = pd.DataFrame(synthetic_members(400, np.random.default_rng(2))).assign(predicted=10000.0)
    loss = fit_loss_model(big, tuple(MODEL_INPUT_COLUMNS), "predicted", "annual_charges", EstimateParams(folds=2))
    empty = estimate_mae(loss, big.iloc[0:0], "predicted")
    assert empty.n == 0 and np.isnan(empty.value)
    hostile = big.head(5).assign(region="atlantis", bmi=float("nan"))       # unseen category, missing value
    assert np.isfinite(estimate_mae(loss, hostile, "predicted").value)
