"""The monitoring tables' columns, alert types and severities, defined once.

Rows are appended per monitoring run; re-running a window replaces that window's rows.
"""

from __future__ import annotations

DRIFT_SCHEMA_DDL = ", ".join([
    "run_id STRING",
    "window_start DATE",
    "window_end DATE",
    "column_name STRING",      # a model input, 'prediction', a group column, or '' for batch-level metrics
    "metric STRING",           # psi, js_distance, ks_statistic, ks_pvalue, wasserstein_norm, composite_drift, group_share_delta, volume, ...
    "value DOUBLE",
    "threshold DOUBLE",
    "status STRING",           # stable / moderate / significant for PSI; ok / alert otherwise
    "computed_at TIMESTAMP",
])
FAIRNESS_SCHEMA_DDL = ", ".join([
    "run_id STRING",
    "window_start DATE",
    "window_end DATE",
    "group_column STRING",
    "group_value STRING",
    "n BIGINT",
    "mae DOUBLE",
    "risk_score_mae DOUBLE",
    "calibration_ratio DOUBLE",
    "critical_share DOUBLE",
    "computed_at TIMESTAMP",
])
ALERT_SCHEMA_DDL = ", ".join([
    "alert_id STRING",
    "run_id STRING",
    "window_start DATE",
    "window_end DATE",
    "type STRING",
    "severity STRING",
    "message STRING",
    "column_name STRING",
    "value DOUBLE",
    "threshold DOUBLE",
    "details STRING",          # JSON: the values behind the alert
    "created_at TIMESTAMP",
    "acknowledged_by STRING",
    "acknowledged_at TIMESTAMP",
    "retrain_run_id STRING",
])

ALERT_TYPES = ("composite_drift", "prediction_drift", "demographic_shift", "low_volume", "performance", "fairness")
SEVERITIES = ("info", "warning", "critical")
