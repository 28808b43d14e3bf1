"""Bundle entry point of the ``model_training`` task.

    python jobs/model_training.py --target local --catalog hc_local --schema insurance [--as_of YYYY-MM-DD]
        [--seed 42] [--candidates name,name] [--experiment_name NAME] [--git_commit SHA]

Trains on one as-of date's features (default: the latest), registers a new version of
``<catalog>.<schema>.insurance_model`` and gives it the alias ``challenger``.
"""

from healthcare_mlops.dates import parse_optional_date
from healthcare_mlops.tasks import model_training
from healthcare_mlops.tasks.entrypoint import main

if __name__ == "__main__":
    main(lambda params, runtime: model_training.run(
        runtime, parse_optional_date(params.get("as_of"), "as-of date"), seed=int(params.get("seed") or 42),
        candidates=tuple(c for c in (params.get("candidates") or "").split(",") if c) or None))
