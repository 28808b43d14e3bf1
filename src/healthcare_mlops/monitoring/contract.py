"""The monitoring tables' alert types and severities, defined once (their columns: tables.py).

Rows are appended per monitoring run; re-running a window replaces that window's rows
(each table is partitioned by ``window_start, window_end`` and a run replaces its
window's partition in one atomic write). An alert's ``alert_id`` is derived from its
window, type and column, so a rerun of the window keeps the id, the acknowledgement and
the retrain it triggered. See monitoring/evaluation.py for the verdicts and severities.
"""

from __future__ import annotations

from enum import Enum

from healthcare_mlops.tables import ML_DRIFT_METRICS_SPEC, ML_FAIRNESS_METRICS_SPEC, ML_MODEL_ALERTS_SPEC

# Columns and types in tables.py.
DRIFT_SCHEMA_DDL = ML_DRIFT_METRICS_SPEC.ddl
FAIRNESS_SCHEMA_DDL = ML_FAIRNESS_METRICS_SPEC.ddl
ALERT_SCHEMA_DDL = ML_MODEL_ALERTS_SPEC.ddl

ALERT_TYPES = ("composite_drift", "prediction_drift", "demographic_shift", "low_volume", "performance", "fairness",
               "realtime_drift", "serving_error_rate", "estimated_performance")


class AlertSeverity(str, Enum):
    """An alert's severity (``ml_model_alerts.severity`` stores its value); not a risk band."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITIES = tuple(severity.value for severity in AlertSeverity)

WINDOW_COLUMNS = ML_MODEL_ALERTS_SPEC.partition_by
DRIFT_COLUMNS = ML_DRIFT_METRICS_SPEC.names
FAIRNESS_COLUMNS = ML_FAIRNESS_METRICS_SPEC.names
ALERT_COLUMNS = ML_MODEL_ALERTS_SPEC.names
