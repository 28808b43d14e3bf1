"""Bundle entry point of the ``batch_inference`` task (and of the training pipeline's validation scoring).

    python jobs/batch_inference.py --target local --catalog hc_local --schema insurance
        --model_name insurance_model --scoring_date YYYY-MM-DD --mode production|validation
        --min_predicted_charges 1000 --review_interval_width_ratio 2.0

``--scoring_date`` empty: today (UTC). ``production`` scores with the champion into
ml_patient_predictions; ``validation`` with the challenger into
ml_patient_predictions_validation, then checks the output contract.
"""

from healthcare_mlops.tasks import batch_inference
from healthcare_mlops.tasks.entrypoint import main

if __name__ == "__main__":
    main(lambda params, runtime: batch_inference.run(runtime, params.get("scoring_date") or None,
                                                      params.get("mode") or batch_inference.PRODUCTION))
