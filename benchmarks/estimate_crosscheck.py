"""Cross-check of the label-free MAE estimate (our DLE) against NannyML's DLE on the same windows.

The product estimates a window's MAE without labels with its own Direct Loss Estimation
(monitoring/performance_estimate.py); NannyML's ``DLE`` is the maintained implementation of the same
method, not taken as a dependency (see that module's docstring). This fits both on the same held-out
labelled reference and estimates the same scenario windows as benchmarks/estimate_accuracy.py (whose
functions it imports), then prints per scenario the mean of ours, NannyML's and the realised MAE, the mean
|ours - NannyML's| and how many windows each interval covers the realised MAE in (ours: 90 %;
NannyML's: estimate +- 3 sampling errors). NannyML is not a product dependency: install it beside the
product in a separate virtualenv.

    python -m venv /tmp/nanny && /tmp/nanny/bin/pip install nannyml statsmodels -e .   # 0.13.1 imports statsmodels
    /tmp/nanny/bin/python benchmarks/estimate_crosscheck.py --seeds 3
"""

from __future__ import annotations

import os
import sys

import numpy as np
from estimate_accuracy import SCENARIOS, scored_split, seeded_runs, windows

from healthcare_mlops.monitoring.performance_estimate import EstimateParams, estimate_mae, fit_loss_model
from healthcare_mlops.tables import MODEL_INPUT_COLUMNS

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")     # no usage telemetry from a benchmark
try:
    import nannyml as nml
except ModuleNotFoundError as missing:
    if missing.name != "nannyml":       # installed but broken (e.g. 0.13.1 imports statsmodels undeclared)
        raise
    nml = None


def nannyml_estimate(dle, window) -> tuple[float, float, float]:
    """NannyML's estimated MAE of the window as one chunk, and its confidence bounds."""
    frame = dle.estimate(window).filter(period="analysis").to_df()
    value, lower, upper = (float(frame[("mae", column)].iloc[0])
                           for column in ("value", "lower_confidence_boundary", "upper_confidence_boundary"))
    if np.isnan(value):                 # NannyML logs a metric's exception and returns NaN
        raise RuntimeError("NannyML's DLE returned no MAE estimate (see its logged error)")
    return value, lower, upper


def one_seed(seed: int, members: int) -> dict[str, tuple]:
    """Per scenario: (ours, NannyML's (value, lower, upper), realised MAE) on estimate_accuracy's window."""
    rng, reference, pool = scored_split(seed, members)
    inputs = list(MODEL_INPUT_COLUMNS)
    ours = fit_loss_model(reference, tuple(inputs), "predicted", "annual_charges", EstimateParams(seed=seed))
    theirs = nml.DLE(feature_column_names=inputs, y_pred="predicted", y_true="annual_charges",
                     metrics=["mae"], chunk_number=1,
                     hyperparameters={"verbose": -1}).fit(reference)     # NannyML's default LGBMRegressor(), quiet
    return {scenario: (estimate_mae(ours, current, "predicted"), nannyml_estimate(theirs, current), realised)
            for scenario, current, realised, _, _ in windows(pool, rng, members // 8)}


def main(argv: list[str] | None = None) -> int:
    if nml is None:
        print("nannyml is not installed (it is not a product dependency): see this script's docstring",
              file=sys.stderr)
        return 2
    args, runs = seeded_runs(__doc__, one_seed, argv, 3)
    print(f"{'scenario':<15} {'ours':>7} {'nannyml':>8} {'realised':>9} {'|diff|':>7} {'ours cov':>9} "
          f"{'nml cov':>8}   (mean MAE in USD, {args.seeds} seeds, windows of {args.members // 8:,})")
    for scenario in SCENARIOS:
        ours = np.array([r[scenario][0].value for r in runs])
        theirs = np.array([r[scenario][1][0] for r in runs])
        realised = np.array([r[scenario][2] for r in runs])
        ours_covered = sum(r[scenario][0].covers(r[scenario][2]) for r in runs)
        theirs_covered = sum(r[scenario][1][1] <= r[scenario][2] <= r[scenario][1][2] for r in runs)
        print(f"{scenario:<15} {ours.mean():7,.0f} {theirs.mean():8,.0f} {realised.mean():9,.0f} "
              f"{np.abs(ours - theirs).mean():7,.0f} {ours_covered:>6}/{len(runs)} {theirs_covered:>5}/{len(runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
