"""The monitoring tables' columns, alert types and severities, defined once.

Rows are appended per monitoring run; re-running a window replaces that window's rows
(each table is partitioned by ``window_start, window_end`` and a run replaces its
window's partition in one atomic write). An alert's ``alert_id`` is derived from its
window, type and column, so a rerun of the window keeps the id, the acknowledgement and
the retrain it triggered. See monitoring/evaluation.py for the verdicts and severities.
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
    "status STRING",           # stable / moderate / significant for PSI; ok / alert for thresholded metrics;
                               # info (no threshold); insufficient_data (too few rows to judge); flag (four-fifths)
    "computed_at TIMESTAMP",
    "group_value STRING",      # the group's value for group_share* rows (and the worst group of calibration_ratio_worst); else null
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
    "scoring_date DATE",       # the scored batch that was evaluated (performance needs later labels)
    "label_date DATE",         # the as-of date of the features whose annual_charges were the actuals
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
    "acknowledged_comment STRING",
])

ALERT_TYPES = ("composite_drift", "prediction_drift", "demographic_shift", "low_volume", "performance", "fairness")
SEVERITIES = ("info", "warning", "critical")

WINDOW_COLUMNS = ("window_start", "window_end")
DRIFT_COLUMNS = tuple(part.split()[0] for part in DRIFT_SCHEMA_DDL.split(", "))
FAIRNESS_COLUMNS = tuple(part.split()[0] for part in FAIRNESS_SCHEMA_DDL.split(", "))
ALERT_COLUMNS = tuple(part.split()[0] for part in ALERT_SCHEMA_DDL.split(", "))
