"""How often the training pipeline reaches a champion in auto mode on public-table-sized data.

    .venv/bin/python benchmarks/champion_rate.py --patients 1338 --seeds 1-10

Per seed, into a fresh temporary home: ``data generate --patients N --seed S``, then the
training pipeline's steps in auto approval mode (feature_engineering -> model_training ->
model_governance, the same task functions the bundle's ``ml_training_pipeline`` runs).
Prints each seed's outcome (promoted, or which checks refused or referred it) and the rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from healthcare_mlops.composition import build_runtime, cli_runtime


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(part) for part in text.split(",")]


def run_seed(patients: int, seed: int) -> tuple[str, str]:
    """The governance outcome for one generated population, and the checks that were not passed."""
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tasks.load_members import generate_patients
    from healthcare_mlops.tasks import feature_engineering, model_governance, model_training

    as_of = dt.date(2026, 1, 1)
    with tempfile.TemporaryDirectory() as home:
        settings = resolve_settings("local", home, {"approval_mode": "auto"})
        generate_patients(cli_runtime(settings), patients, seed, as_of)
        feature_engineering.run(build_runtime(settings), as_of)
        model_training.run(build_runtime(settings), as_of)
        try:
            outcome = model_governance.run(build_runtime(settings))
        except model_governance.GovernanceFailed as exc:
            return "refused", str(exc)
        from healthcare_mlops.identity import job_identity

        checks = build_runtime(settings).governance(job_identity(settings.target)).status()["checks"]
        notes = ", ".join(f"{c['name']} {c['verdict']}" for c in checks if c["verdict"] != "pass")
        return outcome, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1338)
    parser.add_argument("--seeds", default="1-10")
    args = parser.parse_args()
    outcomes = [(seed, *run_seed(args.patients, seed)) for seed in _seeds(args.seeds)]
    print(f"\n{'seed':>4}  {'outcome':22} checks not passed (soft warnings included)")
    for seed, outcome, notes in outcomes:
        print(f"{seed:>4}  {outcome:22} {notes}")
    promoted = sum(outcome == "promoted" for _, outcome, _ in outcomes)
    print(f"\nchampion reached on {promoted} of {len(outcomes)} seeds ({args.patients} members each)")


if __name__ == "__main__":
    main()
