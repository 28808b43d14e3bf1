"""The table registry: every table's name, columns and types, partitioning and privacy, defined once.

Each table has a ``TableSpec``; its Spark DDL, column names and Arrow schema are derived from
it (``spec.ddl``, ``spec.names``, ``spec.arrow_schema()``), so no other module writes a
column type. The code that writes a table keeps its rules (data/contract.py,
features/definitions.py, scoring/contract.py, monitoring/contract.py, governance/audit.py,
emulator/run_history.py, data/load_journal.py) and takes the columns from here.

A logical name becomes ``<catalog>.<schema>.<table>`` for the target; jobs, the CLI,
the console and the tests all take table names from here. Pure: no runtime import
(pyarrow only inside ``arrow_schema``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

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
SERVING_PAYLOAD = "serving_payload"


class ColumnType(str, Enum):
    """A column's type, spelled as Spark DDL spells it."""

    STRING = "STRING"
    DOUBLE = "DOUBLE"
    INT = "INT"
    BIGINT = "BIGINT"
    BOOLEAN = "BOOLEAN"
    DATE = "DATE"
    TIMESTAMP = "TIMESTAMP"

    def arrow(self):
        """The Arrow type a writer without Spark uses (timestamps in UTC microseconds, as Delta stores them)."""
        import pyarrow as pa

        return {"STRING": pa.string(), "DOUBLE": pa.float64(), "INT": pa.int32(), "BIGINT": pa.int64(),
                "BOOLEAN": pa.bool_(), "DATE": pa.date32(),
                "TIMESTAMP": pa.timestamp("us", tz="UTC")}[self.value]


STRING, DOUBLE, INT, BIGINT, BOOLEAN, DATE, TIMESTAMP = ColumnType


@dataclass(frozen=True)
class Columns:
    """An ordered list of typed columns; DDL, names and the Arrow schema are derived from it."""

    items: tuple[tuple[str, ColumnType], ...]

    @classmethod
    def of(cls, *items: tuple[str, ColumnType]) -> "Columns":
        return cls(tuple((name, ColumnType(kind)) for name, kind in items))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.items)

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """``(name, "TYPE")`` with plain strings: what a Spark ``cast`` takes."""
        return tuple((name, kind.value) for name, kind in self.items)

    @property
    def types(self) -> dict[str, str]:
        return dict(self.pairs)

    @property
    def ddl(self) -> str:
        """``name TYPE, ...``: what ``spark.createDataFrame(..., schema=)`` and ``mapInArrow`` take."""
        return ", ".join(f"{name} {kind.value}" for name, kind in self.items)

    def arrow_schema(self):
        import pyarrow as pa

        return pa.schema([pa.field(name, kind.arrow()) for name, kind in self.items])

    def without(self, *names: str) -> "Columns":
        return Columns(tuple(item for item in self.items if item[0] not in names))

    def only(self, *names: str) -> "Columns":
        types = dict(self.items)
        return Columns(tuple((name, types[name]) for name in names))


@dataclass(frozen=True)
class TableSpec:
    """One table: its logical name, columns, partition columns, and whether it holds direct identifiers."""

    name: str
    columns: Columns
    partition_by: tuple[str, ...] = ()
    # names, SSN, member id, full ZIP, raw source rows: readable through the `sql` command only
    # when asked for and allowed (read_identifiers), never by the console
    holds_identifiers: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return self.columns.names

    @property
    def ddl(self) -> str:
        return self.columns.ddl

    def arrow_schema(self):
        return self.columns.arrow_schema()


# The model's inputs: the ACA's allowed rating factors (age, tobacco, family size,
# geography) and bmi. ``sex`` is kept in the features table for fairness reporting
# but is never a model input. They and the member explanation's columns are columns of the
# features and predictions tables (features/definitions.py and explanations/contributions.py
# re-export them).
MODEL_INPUT_COLUMNS = ("age", "bmi", "children", "smoker", "region")
BASE_COLUMN = "base_charges"
FLOOR_COLUMN = "floor_adjustment"
CONTRIBUTION_PREFIX = "contribution_"
CONTRIBUTION_COLUMNS = tuple(f"{CONTRIBUTION_PREFIX}{c}" for c in MODEL_INPUT_COLUMNS)
EXPLANATION_COLUMNS = (BASE_COLUMN, *CONTRIBUTION_COLUMNS, FLOOR_COLUMN)
TOP_REASONS_COLUMN = "top_reasons"                 # the largest contributions in words (reasons.py)

# "The member's risk band is critical" (risk score >= 95). Stored as ``high_risk`` and not
# renamed: the predictions table keeps every scoring date's partition, a Delta schema merge
# would add the new name beside the old one (older partitions read null under the new name),
# and renaming in place on Unity Catalog needs column mapping, which raises the table's
# reader/writer protocol. Code names the column through this constant only.
IS_CRITICAL_RISK = "high_risk"

SILVER_PATIENTS_SPEC = TableSpec(SILVER_PATIENTS, Columns.of(
    # a cleaned source extract, raw identifiers included, one row per member per load (as_of_date)
    ("patient_natural_key", STRING), ("member_id", STRING), ("first_name", STRING), ("last_name", STRING),
    ("ssn", STRING), ("date_of_birth", DATE), ("zip_code", STRING), ("sex", STRING), ("age", INT),
    ("bmi", DOUBLE), ("children", INT), ("smoker", BOOLEAN), ("region", STRING), ("annual_charges", DOUBLE),
    ("enrollment_date", DATE), ("as_of_date", DATE), ("source", STRING), ("source_row", BIGINT),
), partition_by=("as_of_date",), holds_identifiers=True)

DIM_PATIENTS_SPEC = TableSpec(DIM_PATIENTS, Columns.of(
    # SCD2 over the silver loads, keyed by patient_natural_key (spark/scd2.py)
    *SILVER_PATIENTS_SPEC.columns.only("patient_natural_key", "member_id", "first_name", "last_name", "ssn",
                                  "date_of_birth", "zip_code", "sex", "age", "bmi", "children", "smoker",
                                  "region", "enrollment_date", "source").items,
    ("effective_from", DATE), ("effective_to", DATE), ("is_current_record", BOOLEAN), ("scd_version", INT),
), holds_identifiers=True)

DATA_QUALITY_QUARANTINE_SPEC = TableSpec(DATA_QUALITY_QUARANTINE, Columns.of(
    # one row per rejected input row, with where it came from and why
    ("stage", STRING), ("source", STRING), ("source_row", BIGINT), ("record_key", STRING),
    ("column_name", STRING), ("reason", STRING), ("raw_record", STRING), ("as_of_date", DATE),
), partition_by=("as_of_date",), holds_identifiers=True)

ML_INSURANCE_FEATURES_SPEC = TableSpec(ML_INSURANCE_FEATURES, Columns.of(
    # one row per member delivered in the as-of date's load, keyed by (patient_natural_key,
    # as_of_date); ``sex`` and ``zip3`` are kept for fairness and geography reporting only
    ("patient_natural_key", STRING), ("as_of_date", DATE), ("age", INT), ("age_band", STRING),
    ("age_risk_score", INT), ("bmi", DOUBLE), ("bmi_category", STRING), ("smoker", BOOLEAN),
    ("smoker_obese", INT), ("children", INT), ("family_size_category", STRING), ("region", STRING),
    ("sex", STRING), ("zip3", STRING), ("annual_charges", DOUBLE), ("scd_version", INT),
), partition_by=("as_of_date",))

_PREDICTION_COLUMNS = Columns.of(
    ("patient_natural_key", STRING), ("scoring_date", DATE), ("predicted_annual_charges", DOUBLE),
    ("risk_score", DOUBLE), ("risk_category", STRING), ("interval_lower", DOUBLE), ("interval_upper", DOUBLE),
    (IS_CRITICAL_RISK, BOOLEAN), ("requires_review", BOOLEAN),
    ("review_reasons", STRING),    # reason codes, then the top reasons in words, joined by
                                   # scoring.contract.REASON_SEPARATOR; '' when none
    # the member's explanation: base + contributions + floor_adjustment = predicted_annual_charges;
    # null only when the model version cannot be explained exactly
    *((name, DOUBLE) for name in EXPLANATION_COLUMNS),
    (TOP_REASONS_COLUMN, STRING),  # "smoker: +23,400 USD; bmi 41.2: +9,800 USD"
    ("age", INT), ("bmi", DOUBLE), ("children", INT), ("smoker", BOOLEAN), ("region", STRING),
    ("sex", STRING), ("age_band", STRING),
    ("model_name", STRING), ("model_version", STRING), ("model_run_id", STRING), ("scored_at", TIMESTAMP),
)
ML_PATIENT_PREDICTIONS_SPEC = TableSpec(ML_PATIENT_PREDICTIONS, _PREDICTION_COLUMNS, partition_by=("scoring_date",))
ML_PATIENT_PREDICTIONS_VALIDATION_SPEC = TableSpec(ML_PATIENT_PREDICTIONS_VALIDATION, _PREDICTION_COLUMNS,
                                              partition_by=("scoring_date",))

_WINDOW = (("window_start", DATE), ("window_end", DATE))
ML_DRIFT_METRICS_SPEC = TableSpec(ML_DRIFT_METRICS, Columns.of(
    ("run_id", STRING), *_WINDOW,
    ("column_name", STRING),     # a model input, 'prediction', a group column, or '' for batch-level metrics
    ("metric", STRING),          # psi, js_distance, ks_statistic, ks_pvalue, wasserstein_norm, composite_drift, ...
    ("value", DOUBLE), ("threshold", DOUBLE),
    ("status", STRING),          # stable / moderate / significant for PSI; ok / alert for thresholded metrics;
                                 # info (no threshold); insufficient_data (too few rows to judge); flag (four-fifths);
                                 # unavailable (an estimated_* metric that could not be made)
    ("computed_at", TIMESTAMP),
    ("group_value", STRING),     # the group's value for group_share* rows (and the worst group of
                                 # calibration_ratio_worst); why an estimated_* row is unavailable; else null
), partition_by=("window_start", "window_end"))
ML_FAIRNESS_METRICS_SPEC = TableSpec(ML_FAIRNESS_METRICS, Columns.of(
    ("run_id", STRING), *_WINDOW, ("group_column", STRING), ("group_value", STRING), ("n", BIGINT),
    ("mae", DOUBLE), ("risk_score_mae", DOUBLE), ("calibration_ratio", DOUBLE), ("critical_share", DOUBLE),
    ("computed_at", TIMESTAMP),
    ("scoring_date", DATE),      # the scored batch that was evaluated (performance needs later labels)
    ("label_date", DATE),        # the as-of date of the features whose annual_charges were the actuals
    ("relative_calibration", DOUBLE),  # calibration_ratio / everyone else's: what the calibration band
                                       # judges (calibration_ratio_worst); null for 'all'
), partition_by=("window_start", "window_end"))
ML_MODEL_ALERTS_SPEC = TableSpec(ML_MODEL_ALERTS, Columns.of(
    ("alert_id", STRING), ("run_id", STRING), *_WINDOW, ("type", STRING), ("severity", STRING),
    ("message", STRING), ("column_name", STRING), ("value", DOUBLE), ("threshold", DOUBLE),
    ("details", STRING),         # JSON: the values behind the alert
    ("created_at", TIMESTAMP), ("acknowledged_by", STRING), ("acknowledged_at", TIMESTAMP),
    ("retrain_run_id", STRING), ("acknowledged_comment", STRING),
), partition_by=("window_start", "window_end"))

MODEL_GOVERNANCE_LOG_SPEC = TableSpec(MODEL_GOVERNANCE_LOG, Columns.of(
    ("event_id", STRING), ("model_name", STRING), ("version", STRING), ("action", STRING), ("actor", STRING),
    ("role", STRING), ("event_time", TIMESTAMP), ("comment", STRING), ("override_reason", STRING),
    ("hard_checks_passed", BOOLEAN), ("checks", STRING), ("approval_mode", STRING),
))
JOB_RUNS_SPEC = TableSpec(JOB_RUNS, Columns.of(
    ("run_id", BIGINT), ("parent_run_id", BIGINT), ("job_key", STRING), ("task_key", STRING), ("status", STRING),
    ("trigger", STRING), ("start_time", TIMESTAMP), ("end_time", TIMESTAMP), ("duration_seconds", DOUBLE),
    ("error", STRING), ("parameters", STRING),
))
MEMBER_LOADS_SPEC = TableSpec(MEMBER_LOADS, Columns.of(
    ("load_id", STRING), ("event", STRING), ("source", STRING), ("stage", STRING), ("as_of_date", DATE),
    ("fingerprint", STRING),
    ("silver_version", BIGINT),  # before the load; null: the table did not exist
    ("quarantine_version", BIGINT), ("rows_in", BIGINT), ("rows_loaded", BIGINT), ("rows_quarantined", BIGINT),
    ("recorded_at", TIMESTAMP),
    ("dim_version", BIGINT),     # dim_patients before the load (merged, not rebuilt: its rollback)
    ("loaded_by", STRING), ("role", STRING),     # who started the load, in which role (identity.py)
))

# Every real-time request: on Databricks AI Gateway's inference table (<prefix>_payload, its columns),
# locally the same columns written by `healthcare-mlops serve` (scoring/request_log.py), plus the
# version that answered. ``request`` holds only the model inputs; a refused request keeps its error only.
SERVING_PAYLOAD_SPEC = TableSpec(SERVING_PAYLOAD, Columns.of(
    ("request_date", DATE), ("databricks_request_id", STRING), ("request_time", TIMESTAMP),
    ("status_code", INT), ("execution_duration_ms", BIGINT),
    ("request", STRING),         # JSON of the accepted request; null when it was refused
    ("response", STRING),        # JSON of the answer, or of the refusal's error
    ("served_entity_id", STRING), ("model_version", STRING),
), partition_by=("request_date",))

SPECS = (SILVER_PATIENTS_SPEC, DIM_PATIENTS_SPEC, DATA_QUALITY_QUARANTINE_SPEC, ML_INSURANCE_FEATURES_SPEC,
         ML_PATIENT_PREDICTIONS_SPEC, ML_PATIENT_PREDICTIONS_VALIDATION_SPEC, ML_DRIFT_METRICS_SPEC,
         ML_FAIRNESS_METRICS_SPEC, ML_MODEL_ALERTS_SPEC, MODEL_GOVERNANCE_LOG_SPEC, JOB_RUNS_SPEC, MEMBER_LOADS_SPEC,
         SERVING_PAYLOAD_SPEC)
TABLE_SPECS = {spec.name: spec for spec in SPECS}

ALL_TABLES = tuple(TABLE_SPECS)
PERSONAL_TABLES = tuple(spec.name for spec in SPECS if spec.holds_identifiers)
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
