"""Bundle entry point of the ``load_members`` task.

    python jobs/load_members.py --target local --catalog hc_local --schema insurance
        --source csv --path /Volumes/<catalog>/<schema>/landing/insurance.csv [--as_of YYYY-MM-DD]
    python jobs/load_members.py ... --source synthetic --patients 20000 --seed 42 [--scenario baseline]

Loads one as-of date's members into silver_patients and dim_patients (bad rows to the quarantine).
"""

from healthcare_mlops.tasks import load_members
from healthcare_mlops.tasks.entrypoint import main

if __name__ == "__main__":
    main(lambda params, runtime: load_members.run(runtime, params))
