"""Bundle entry point of the ``model_reproduction`` task.

    python jobs/model_reproduction.py --target local --catalog hc_local --schema insurance
        [--model_version N] [--git_commit SHA] --r2_min 0.7 ... (the governance thresholds)

Rebuilds a registered version (default: the champion) from its lineage and compares it with
the registered one; the outcome is tagged on the version and audited.
"""

from healthcare_mlops.tasks import model_reproduction
from healthcare_mlops.tasks.entrypoint import main

if __name__ == "__main__":
    main(lambda params, runtime: model_reproduction.run(runtime, params.get("model_version") or None))
