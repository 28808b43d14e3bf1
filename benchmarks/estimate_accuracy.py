"""How close the label-free MAE estimate (DLE) comes to the realised MAE, per scenario, across seeds.

Each seed draws members from the generator's population (data/synthetic.py), trains a model
on one part, keeps a held-out reference with its charges, and builds windows shaped like
the generator's scenarios (data/scenarios.py) with their documented magnitudes: the smoker
surge (+15 points of smokers, by resampling the drawn members), ageing (members aged 31 and
over only) and cost inflation (charges x1.25, inputs unchanged). The realised MAE of each
window comes from its charges, which the estimate never sees; the expected MAE is the
scenario's MAE over the whole weighted pool (what the window's realised MAE scatters around).
Prints, per scenario, the mean estimate, the mean realised and expected MAE, the mean
absolute gap between estimate and realised MAE and how many windows' intervals cover the
realised MAE. tests/test_performance_estimate.py asserts on the same windows.

    .venv/bin/python benchmarks/estimate_accuracy.py              # seeds 0-5, 24,000 members each
    .venv/bin/python benchmarks/estimate_accuracy.py --seeds 20 --members 12000
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from healthcare_mlops.data.scenarios import AGING_MIN_AGE, get_scenario
from healthcare_mlops.data.synthetic import synthetic_members
from healthcare_mlops.monitoring.performance_estimate import EstimateParams, estimate_mae, fit_loss_model
from healthcare_mlops.tables import MODEL_INPUT_COLUMNS

SCENARIOS = ("baseline", "smoker_surge", "aging", "cost_inflation")
MEMBERS = 24000
LARGE_DRAW = 100_000       # rows of the scenario-weighted pool whose estimate is free of a window's noise


def monitored_model(train: pd.DataFrame):
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(loss="poisson", max_iter=200, random_state=0)
    return model.fit(codes(train), train["annual_charges"])


def codes(frame: pd.DataFrame) -> np.ndarray:
    region = pd.Categorical(frame["region"], categories=sorted(frame["region"].unique())).codes
    return np.column_stack([frame["age"], frame["bmi"], frame["children"], frame["smoker"].astype(int), region])


def weights(pool: pd.DataFrame, scenario: str) -> np.ndarray:
    """Each pool member's weight in a window shaped like the scenario."""
    if scenario == "smoker_surge":
        share = pool["smoker"].mean()
        target = share + get_scenario("smoker_surge").shape.smoker_share_delta
        return np.where(pool["smoker"], target / share, (1 - target) / (1 - share))
    if scenario == "aging":
        return (pool["age"] >= AGING_MIN_AGE).to_numpy(float)
    return np.ones(len(pool))


def shaped(pool: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """The pool with the scenario's charges (cost inflation: x the documented factor, inputs unchanged)."""
    if scenario == "cost_inflation":
        return pool.assign(annual_charges=pool["annual_charges"] * get_scenario("cost_inflation").shape.charge_factor)
    return pool


def scored_split(seed: int, members: int = MEMBERS):
    """The seed's generator, its held-out labelled reference and its pool, both scored by the monitored
    model (column ``predicted``): a third of the members train the model, a quarter is the reference,
    the rest is the pool."""
    rng = np.random.default_rng(seed)
    drawn = pd.DataFrame(synthetic_members(members, rng))
    cut, held = members // 3, members // 3 + members // 4
    train, reference, pool = drawn.iloc[:cut], drawn.iloc[cut:held].copy(), drawn.iloc[held:].copy()
    model = monitored_model(train)
    for frame in (reference, pool):
        frame["predicted"] = model.predict(codes(frame))
    return rng, reference, pool


def windows(pool: pd.DataFrame, rng: np.random.Generator, size: int):
    """Per scenario: (scenario, window of ``size`` rows, its realised MAE, expected MAE, large draw). The
    window is drawn from the pool with the scenario's weights; the expected MAE is the weighted pool's,
    the large draw (``LARGE_DRAW`` rows) gives an estimate free of the window's sampling noise."""
    for scenario in SCENARIOS:
        population, weight = shaped(pool, scenario), weights(pool, scenario)
        error = (population["annual_charges"] - population["predicted"]).abs()
        current = population.sample(size, replace=True, weights=weight, random_state=rng.integers(1 << 31))
        realised = float((current["annual_charges"] - current["predicted"]).abs().mean())
        large = population.sample(LARGE_DRAW, replace=True, weights=weight, random_state=rng.integers(1 << 31))
        yield scenario, current, realised, float(np.average(error, weights=weight)), large


def one_seed(seed: int, members: int = MEMBERS) -> dict[str, tuple]:
    """Per scenario: (estimate, realised MAE, expected MAE, expected estimate) of ``windows`` of an
    eighth of ``members``; the expected estimate is the large draw's."""
    rng, reference, pool = scored_split(seed, members)
    loss = fit_loss_model(reference, tuple(MODEL_INPUT_COLUMNS), "predicted", "annual_charges",
                          EstimateParams(seed=seed))
    return {scenario: (estimate_mae(loss, current, "predicted"), realised, expected, draw_estimate(loss, large))
            for scenario, current, realised, expected, large in windows(pool, rng, members // 8)}


def draw_estimate(loss, large: pd.DataFrame) -> float:
    """The large draw's estimate from its distinct pool rows, each counted as often as drawn: the
    same number as of all ``LARGE_DRAW`` rows, for a tenth of the loss models' predictions."""
    counts = large.index.value_counts(sort=False)
    distinct = large[~large.index.duplicated()].loc[counts.index]
    return estimate_mae(loss, distinct, "predicted", counts=counts.to_numpy()).value


def seeded_runs(doc: str, per_seed, argv: list[str] | None, seeds: int) -> tuple[argparse.Namespace, list]:
    """``--seeds``/``--members`` from ``argv``, and ``per_seed(seed, members)`` for each seed."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--members", type=int, default=MEMBERS)
    args = parser.parse_args(argv)
    with threadpool_limits(1):          # one thread per fit: faster than contended OpenMP threads
        return args, [per_seed(seed, args.members) for seed in range(args.seeds)]


def main(argv: list[str] | None = None) -> int:
    args, runs = seeded_runs(__doc__, one_seed, argv, 6)
    print(f"{'scenario':<15} {'estimate':>9} {'realised':>9} {'expected':>9} {'|gap|':>8} {'covered':>8}   "
          f"(mean MAE in USD, {args.seeds} seeds, windows of {args.members // 8:,})")
    for scenario in SCENARIOS:
        estimates = np.array([r[scenario][0].value for r in runs])
        realised = np.array([r[scenario][1] for r in runs])
        expected = np.array([r[scenario][2] for r in runs])
        covered = sum(r[scenario][0].covers(r[scenario][1]) for r in runs)
        print(f"{scenario:<15} {estimates.mean():9,.0f} {realised.mean():9,.0f} {expected.mean():9,.0f} "
              f"{np.abs(estimates - realised).mean():8,.0f} {covered:>5}/{len(runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
