"""Bundle entry point of the ``model_governance`` task.

    python jobs/model_governance.py --target local --catalog hc_local --schema insurance
        --approval_mode auto [--model_version N] --r2_min 0.7 ... (every threshold, from the bundle's variables)

Validates ``--model_version`` (empty: the challenger), applies an approver's recorded decision,
and promotes it when the approval mode and the decision allow.
"""

from healthcare_mlops.tasks import model_governance
from healthcare_mlops.tasks.entrypoint import main

if __name__ == "__main__":
    main(lambda params, runtime: model_governance.run(runtime, params.get("model_version") or None))
