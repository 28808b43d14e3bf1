"""ml_patient_predictions (and its _validation twin): one row per member per scoring date.

No personal data: the de-identified natural key, the model inputs and the group columns
that monitoring needs (sex and age band for fairness and demographic shift).
"""

from __future__ import annotations

PREDICTION_SCHEMA_DDL = ", ".join([
    "patient_natural_key STRING",
    "scoring_date DATE",
    "predicted_annual_charges DOUBLE",
    "risk_score DOUBLE",
    "risk_category STRING",
    "interval_lower DOUBLE",
    "interval_upper DOUBLE",
    "high_risk BOOLEAN",
    "requires_review BOOLEAN",
    "review_reasons STRING",          # reason codes joined by REASON_SEPARATOR, '' when none
    "age INT",
    "bmi DOUBLE",
    "children INT",
    "smoker BOOLEAN",
    "region STRING",
    "sex STRING",
    "age_band STRING",
    "model_name STRING",
    "model_version STRING",
    "model_run_id STRING",
    "scored_at TIMESTAMP",
])
PREDICTION_COLUMNS = tuple(part.split()[0] for part in PREDICTION_SCHEMA_DDL.split(", "))
REASON_SEPARATOR = ";"
PARTITION_COLUMN = "scoring_date"
