"""The table registry: every table's logical name, defined once.

Column contracts live next to the code that writes each table: data/contract.py
(silver, dim, quarantine), features/definitions.py (features), scoring/contract.py
(predictions), monitoring/contract.py (drift, fairness, alerts), governance/audit.py
(governance log), bundle/run_history.py (job runs) and data/load_journal.py (member
loads).

A logical name becomes ``<catalog>.<schema>.<table>`` for the target; jobs, the CLI,
the console and the tests all take table names from here.
"""

from __future__ import annotations

from dataclasses import dataclass

SILVER_PATIENTS = "silver_patients"
DIM_PATIENTS = "dim_patients"
DATA_QUALITY_QUARANTINE = "data_quality_quarantine"
ML_INSURANCE_FEATURES = "ml_insurance_features"
ML_PATIENT_PREDICTIONS = "ml_patient_predictions"
ML_PATIENT_PREDICTIONS_VALIDATION = "ml_patient_predictions_validation"
ML_DRIFT_METRICS = "ml_drift_metrics"
ML_FAIRNESS_METRICS = "ml_fairness_metrics"
ML_MODEL_ALERTS = "ml_model_alerts"
MODEL_GOVERNANCE_LOG = "model_governance_log"
JOB_RUNS = "job_runs"
MEMBER_LOADS = "member_loads"

# The tables with direct identifiers (names, SSN, full ZIP, raw source rows): readable through
# the `sql` command only when asked for and allowed (read_identifiers), never by the console.
PERSONAL_TABLES = (SILVER_PATIENTS, DIM_PATIENTS, DATA_QUALITY_QUARANTINE)

ALL_TABLES = (
    SILVER_PATIENTS,
    DIM_PATIENTS,
    DATA_QUALITY_QUARANTINE,
    ML_INSURANCE_FEATURES,
    ML_PATIENT_PREDICTIONS,
    ML_PATIENT_PREDICTIONS_VALIDATION,
    ML_DRIFT_METRICS,
    ML_FAIRNESS_METRICS,
    ML_MODEL_ALERTS,
    MODEL_GOVERNANCE_LOG,
    JOB_RUNS,
    MEMBER_LOADS,
)
# Past the feature step: no direct identifiers (names, SSN, member id, full ZIP, full birth
# date); rows of members carry only the de-identified patient_natural_key (privacy.py).
DEIDENTIFIED_TABLES = ALL_TABLES[ALL_TABLES.index(ML_INSURANCE_FEATURES):]


@dataclass(frozen=True)
class TableRegistry:
    """Turns logical table names into fully qualified names for one catalog and schema."""

    catalog: str
    schema: str

    def fqn(self, logical_name: str) -> str:
        if logical_name not in ALL_TABLES:
            raise KeyError(f"unknown table '{logical_name}' (known: {', '.join(ALL_TABLES)})")
        return f"{self.catalog}.{self.schema}.{logical_name}"

    @staticmethod
    def names() -> tuple[str, ...]:
        return ALL_TABLES
