"""The product's facts a page shows or offers as choices, defined once in the domain package.

Pages import only from ``app/`` (docs/architecture.md); what they need of the domain's
definitions (regions, age bands, input ranges, fairness groups, verdict words, table
names) comes through here.
"""

from healthcare_mlops import tables
from healthcare_mlops.data.contract import AGE_RANGE, BMI_RANGE, CHILDREN_RANGE, REGIONS
from healthcare_mlops.features.definitions import AGE_BANDS, SCORED_RATING_FACTORS
from healthcare_mlops.governance.audit import REJECTED
from healthcare_mlops.governance.checks import FAIRNESS_GROUPS, in_words
from healthcare_mlops.governance.thresholds import approval_mode
from healthcare_mlops.modeling.artifacts import PROMOTION_PENDING
from healthcare_mlops.modeling.risk import RiskBand
from healthcare_mlops.monitoring.contract import AlertSeverity
from healthcare_mlops.monitoring.evaluation import ALERT, ALL_GROUP, FLAG, OK, MonitoringThresholds
from healthcare_mlops.monitoring.serving_traffic import REALTIME_PREFIX
from healthcare_mlops.parameters import monitoring_thresholds

__all__ = ["AGE_BANDS", "AGE_RANGE", "ALERT", "ALL_GROUP", "BMI_RANGE", "CHILDREN_RANGE", "COLUMNS", "FAIRNESS_GROUPS",
           "FLAG", "OK", "PROMOTION_PENDING", "REALTIME_PREFIX", "REGIONS", "REJECTED", "SCORED_RATING_FACTORS",
           "AlertSeverity", "MonitoringThresholds", "RiskBand",
           "approval_mode", "monitoring_thresholds",
           "column_words", "in_words", "plural", "tables"]

# Column headers in words, with units, for every table the console shows: column -> (header, format).
# Formats: usd (dollars), percent (a share 0-1), count (thousands separated), score (one decimal),
# ratio (a plain number), seconds, text. A column not listed is shown as its name in words.
COLUMNS: dict[str, tuple[str, str]] = {
    "patient_natural_key": ("Member key (de-identified)", "text"),
    "scoring_date": ("Scoring date", "text"),
    "predicted_annual_charges": ("Predicted annual charges (USD)", "usd"),
    "interval_lower": ("90 % interval, low (USD)", "usd"),
    "interval_upper": ("90 % interval, high (USD)", "usd"),
    "risk_score": ("Risk score (0-100)", "score"),
    "risk_category": ("Risk category", "text"),
    "review_reasons": ("Why flagged for review", "text"),
    "age_band": ("Age band", "text"),
    "members": ("Members", "count"),
    "share": ("Share of members", "percent"),
    "job_key": ("Job", "text"),
    "task_key": ("Task", "text"),
    "start_time": ("Started (UTC)", "text"),
    "end_time": ("Ended (UTC)", "text"),
    "duration_seconds": ("Duration (s)", "seconds"),
    "run_id": ("Run", "text"),
    "created_at": ("Raised (UTC)", "text"),
    "alert_type": ("Alert type", "text"),
    "column_name": ("Input or group", "text"),
    "acknowledged_by": ("Acknowledged by", "text"),
    "acknowledged_at": ("Acknowledged (UTC)", "text"),
    "acknowledged_comment": ("Acknowledgement comment", "text"),
    "acknowledged": ("Acknowledged", "text"),
    "retrain_run_id": ("Retrain run", "text"),
    "alert_id": ("Alert id", "text"),
    "group_column": ("Group column", "text"),
    "group_value": ("Group", "text"),
    "worst_group": ("Worst group", "text"),
    "n": ("Members (n)", "count"),
    "mae": ("Mean absolute error (USD)", "usd"),
    "risk_score_mae": ("Risk-score mean absolute error (points)", "ratio"),
    "calibration_ratio": ("Mean predicted / mean actual", "ratio"),
    "relative_calibration": ("Calibration relative to everyone else (what the band judges)", "ratio"),
    "critical_share": ("Share flagged critical", "percent"),
    "calibration_ok": ("Calibration within band", "text"),
    "judged": ("Large enough to judge", "text"),
    "event_time": ("When (UTC)", "text"),
    "actor_role": ("Role", "text"),
    "override_reason": ("Override reason", "text"),
    "hard_checks_passed": ("Hard checks passed", "text"),
    "approval_mode": ("Approval mode", "text"),
    "registered": ("Registered (UTC)", "text"),
    "version": ("Version", "text"),
    "reproduced_at": ("Last reproduced (UTC)", "text"),
    "reproduction": ("Reproduction result", "text"),
}


def column_words(name: str) -> tuple[str, str]:
    """A column's header in words and its format; a column not in ``COLUMNS`` reads as its name in words."""
    return COLUMNS.get(name) or (name.replace("_", " ").capitalize(), "text")


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """'1 child', '2 children', '0 members'."""
    return f"{count:,} {noun if count == 1 else plural_noun or noun + 's'}"
