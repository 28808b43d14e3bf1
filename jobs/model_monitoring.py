"""Bundle entry point of the ``model_monitoring`` task (and the pipeline's ``monitoring_setup``).

    python jobs/model_monitoring.py --target local --catalog hc_local --schema insurance
        --mode monitor|setup [--window_start YYYY-MM-DD] [--window_end YYYY-MM-DD]
        [--retrain_job_id JOB] [--run_id ID] --psi_moderate 0.1 ... (the monitoring thresholds)

``monitor``: the window (default: the latest scoring date) against the champion's training
reference -> ml_drift_metrics, ml_fairness_metrics, ml_model_alerts; a critical alert starts
the job ``--retrain_job_id`` (empty: no retrain). ``setup``: checks the references and
creates the monitoring tables.
"""

from healthcare_mlops.tasks import model_monitoring
from healthcare_mlops.tasks.entrypoint import main

if __name__ == "__main__":
    main(lambda params, runtime: model_monitoring.run(
        runtime, params.get("mode") or model_monitoring.MONITOR, params.get("window_start"),
        params.get("window_end"), params.get("retrain_job_id"), params.get("run_id")))
