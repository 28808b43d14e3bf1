"""How close the label-free MAE estimate (DLE) comes to the realised MAE, per scenario, across seeds.

Each seed draws members from the generator's population (data/synthetic.py), trains a model
on one part, keeps a held-out reference with its charges, and builds windows shaped like
the generator's scenarios (data/scenarios.py) with their documented magnitudes: the smoker
surge (+15 points of smokers, by resampling the drawn members), ageing (members aged 31 and
over only) and cost inflation (charges x1.25, inputs unchanged). The realised MAE of each
window comes from its charges, which the estimate never sees. Prints, per scenario, the mean
estimate, the mean realised MAE, the mean absolute gap and how many windows' intervals
cover the realised MAE. tests/test_performance_estimate.py asserts on the same windows.

    .venv/bin/python benchmarks/estimate_accuracy.py              # seeds 0-5, 24,000 members each
    .venv/bin/python benchmarks/estimate_accuracy.py --seeds 20 --members 12000
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from healthcare_mlops.data.scenarios import AGING_MIN_AGE, get_scenario
from healthcare_mlops.data.synthetic import synthetic_members
from healthcare_mlops.monitoring.performance_estimate import EstimateParams, estimate_mae, fit_loss_model
from healthcare_mlops.tables import MODEL_INPUT_COLUMNS

SCENARIOS = ("baseline", "smoker_surge", "aging", "cost_inflation")
MEMBERS = 24000


def monitored_model(train: pd.DataFrame):
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(loss="poisson", max_iter=200, random_state=0)
    return model.fit(codes(train), train["annual_charges"])


def codes(frame: pd.DataFrame) -> np.ndarray:
    region = pd.Categorical(frame["region"], categories=sorted(frame["region"].unique())).codes
    return np.column_stack([frame["age"], frame["bmi"], frame["children"], frame["smoker"].astype(int), region])


def window(pool: pd.DataFrame, scenario: str, rng: np.random.Generator, size: int) -> pd.DataFrame:
    """``size`` members of ``pool`` shaped like the scenario."""
    if scenario == "smoker_surge":
        target = pool["smoker"].mean() + get_scenario("smoker_surge").shape.smoker_share_delta
        weights = np.where(pool["smoker"], target / pool["smoker"].mean(), (1 - target) / (1 - pool["smoker"].mean()))
        return pool.sample(size, replace=True, weights=weights, random_state=rng.integers(1 << 31))
    if scenario == "aging":
        return pool[pool["age"] >= AGING_MIN_AGE].sample(size, replace=True, random_state=rng.integers(1 << 31))
    chosen = pool.sample(size, replace=True, random_state=rng.integers(1 << 31))
    if scenario == "cost_inflation":
        factor = get_scenario("cost_inflation").shape.charge_factor
        return chosen.assign(annual_charges=chosen["annual_charges"] * factor)
    return chosen


def one_seed(seed: int, members: int = MEMBERS) -> dict[str, tuple]:
    """Per scenario: (estimate, realised MAE) on a window of an eighth of ``members``; a third of
    them train the monitored model, a quarter is the labelled reference, the rest the window's pool."""
    rng = np.random.default_rng(seed)
    drawn = pd.DataFrame(synthetic_members(members, rng))
    cut, held = members // 3, members // 3 + members // 4
    train, reference, pool = drawn.iloc[:cut], drawn.iloc[cut:held].copy(), drawn.iloc[held:].copy()
    model = monitored_model(train)
    for frame in (reference, pool):
        frame["predicted"] = model.predict(codes(frame))
    loss = fit_loss_model(reference, tuple(MODEL_INPUT_COLUMNS), "predicted", "annual_charges",
                          EstimateParams(seed=seed))
    results = {}
    for scenario in SCENARIOS:
        current = window(pool, scenario, rng, members // 8)
        realised = float((current["annual_charges"] - current["predicted"]).abs().mean())
        results[scenario] = (estimate_mae(loss, current, "predicted"), realised)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--members", type=int, default=MEMBERS)
    args = parser.parse_args(argv)
    runs = [one_seed(seed, args.members) for seed in range(args.seeds)]
    print(f"{'scenario':<15} {'estimate':>9} {'realised':>9} {'|gap|':>8} {'covered':>8}   (mean MAE in USD, "
          f"{args.seeds} seeds, windows of {args.members // 8:,})")
    for scenario in SCENARIOS:
        estimates = np.array([r[scenario][0].value for r in runs])
        realised = np.array([r[scenario][1] for r in runs])
        covered = sum(r[scenario][0].covers(r[scenario][1]) for r in runs)
        print(f"{scenario:<15} {estimates.mean():9,.0f} {realised.mean():9,.0f} "
              f"{np.abs(estimates - realised).mean():8,.0f} {covered:>5}/{len(runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
