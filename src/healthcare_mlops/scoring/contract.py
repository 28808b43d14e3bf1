"""ml_patient_predictions (and its _validation twin): one row per member per scoring date.

No personal data: the de-identified natural key, the model inputs, the group columns
that monitoring needs (sex and age band for fairness and demographic shift), and the
member's explanation (aggregated model arithmetic, no other data).
"""

from __future__ import annotations

from healthcare_mlops.tables import IS_CRITICAL_RISK, ML_PATIENT_PREDICTIONS_SPEC  # noqa: F401  (re-exported)

# Columns and types in tables.py.
PREDICTION_SCHEMA_DDL = ML_PATIENT_PREDICTIONS_SPEC.ddl
PREDICTION_COLUMNS = ML_PATIENT_PREDICTIONS_SPEC.names
REASON_SEPARATOR = ";"
(PARTITION_COLUMN,) = ML_PATIENT_PREDICTIONS_SPEC.partition_by
