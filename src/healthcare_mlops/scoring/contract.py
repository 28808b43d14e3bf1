"""ml_patient_predictions (and its _validation twin): one row per member per scoring date.

No personal data: the de-identified natural key, the model inputs, the group columns
that monitoring needs (sex and age band for fairness and demographic shift), and the
member's explanation (aggregated model arithmetic, no other data).
"""

from __future__ import annotations

from healthcare_mlops.explanations.contributions import EXPLANATION_COLUMNS, TOP_REASONS_COLUMN

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
    "review_reasons STRING",          # reason codes, then the top reasons in words, joined by REASON_SEPARATOR; '' when none
    # the member's explanation (explanations/): base + contributions + floor_adjustment =
    # predicted_annual_charges; null only when the model version cannot be explained exactly
    *(f"{name} DOUBLE" for name in EXPLANATION_COLUMNS),
    f"{TOP_REASONS_COLUMN} STRING",             # the largest contributions in words: "smoker: +23,400 USD; bmi 41.2: +9,800 USD"
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
