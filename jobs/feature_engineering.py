"""Bundle entry point of the ``feature_engineering`` task.

    python jobs/feature_engineering.py --target local --catalog hc_local --schema insurance [--as_of YYYY-MM-DD]

``--as_of`` empty or absent: the latest silver_patients load.
"""

from healthcare_mlops.tasks import feature_engineering
from healthcare_mlops.tasks.entrypoint import main

if __name__ == "__main__":
    main(lambda params, runtime: feature_engineering.run(runtime, params.get("as_of") or None))
