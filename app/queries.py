"""The console's SQL: every query a page runs, named and parameterised, and the frames pages build from them.

Each query is a named SQL text (``:name`` markers) in ``QUERIES``. Table names are
placeholders (``{ml_patient_predictions}``) that only ``settings.tables.fqn`` fills in, so
the same text runs on DuckDB over the local Delta tables and on a Databricks SQL warehouse
(Spark SQL); ``tests/test_console_sql.py`` runs every query on both DuckDB and Spark.
Charts are aggregated in SQL (counts, histogram bins): no query but the CSV export returns
more than a few thousand rows. Only the de-identified tables past the feature step are
named here (``CONSOLE_TABLES``), never the personal-data tables of the load step.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import pandas as pd

from healthcare_mlops.explanations.contributions import EXPLANATION_COLUMNS, TOP_REASONS_COLUMN
from healthcare_mlops.features.definitions import SCORED_RATING_FACTORS
from healthcare_mlops.modeling.risk import RISK_CATEGORIES, RiskBand
from healthcare_mlops.tables import IS_CRITICAL_RISK
from healthcare_mlops.runtime.console_sql import CONSOLE_TABLES
from healthcare_mlops.settings import Settings

MAX_CSV_ROWS = 2_000_000
HISTOGRAM_BIN_WIDTH = 5          # risk-score points per histogram bar (20 bars over 0-100)
REVIEW_QUEUE_ROWS = 500
ALL = ""                         # the value of a filter parameter that means "no filter"


# -- the queries ------------------------------------------------------------------------------

_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True)
class Query:
    """One named SQL text: ``{table}`` placeholders for table names, ``:name`` parameters."""

    name: str
    template: str
    purpose: str

    @property
    def tables(self) -> tuple[str, ...]:
        names = [field for _, field, _, _ in string.Formatter().parse(self.template) if field]
        return tuple(dict.fromkeys(names))

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_PARAMETER.findall(self.template)))

    def sql(self, settings: Settings) -> str:
        return self.template.format(**{name: settings.tables.fqn(name) for name in self.tables})

    def bind(self, params: dict) -> dict:
        """Exactly the parameters the SQL names (a missing one is a programming error)."""
        missing = [p for p in self.parameters if p not in params]
        if missing:
            raise KeyError(f"query {self.name} needs parameters {', '.join(missing)}")
        return {p: params[p] for p in self.parameters}


# The risk filters: a scoring date, then region / age band / smoker or ALL ('').
_RISK_FILTER = """scoring_date = :scoring_date
      AND (:region = '' OR region = :region)
      AND (:age_band = '' OR age_band = :age_band)
      AND (:smoker = '' OR (:smoker = 'yes' AND smoker) OR (:smoker = 'no' AND NOT smoker))"""

_QUERIES = [
    # -- predictions ---------------------------------------------------------------------
    Query("scoring_dates", """
    SELECT scoring_date, COUNT(*) AS members
    FROM {ml_patient_predictions}
    GROUP BY scoring_date
    ORDER BY scoring_date DESC
    LIMIT 366""", "scored batches, newest first"),
    Query("batch_summary", f"""
    SELECT COUNT(*) AS members,
           SUM(CASE WHEN requires_review THEN 1 ELSE 0 END) AS review,
           SUM(CASE WHEN {IS_CRITICAL_RISK} THEN 1 ELSE 0 END) AS critical_risk_members,
           AVG(predicted_annual_charges) AS mean_predicted,
           MIN(model_version) AS model_version,
           COUNT(DISTINCT model_version) AS model_versions,
           MAX(scored_at) AS scored_at
    FROM {{ml_patient_predictions}}
    WHERE scoring_date = :scoring_date""", "one scored batch in numbers"),  # nosec B608  # only module constants are formatted in
    Query("category_counts", """
    SELECT risk_category, COUNT(*) AS members
    FROM {ml_patient_predictions}
    WHERE scoring_date = :scoring_date
    GROUP BY risk_category""", "members per risk category in one batch"),
    Query("risk_cube", f"""
    SELECT region, age_band, smoker, risk_category, requires_review,
           LEAST(CAST(FLOOR(risk_score / {HISTOGRAM_BIN_WIDTH}) AS INT), {100 // HISTOGRAM_BIN_WIDTH - 1}) AS bin_index,
           COUNT(*) AS members,
           SUM(predicted_annual_charges) AS sum_predicted
    FROM {{ml_patient_predictions}}
    WHERE scoring_date = :scoring_date
    GROUP BY region, age_band, smoker, risk_category, requires_review,
             LEAST(CAST(FLOOR(risk_score / {HISTOGRAM_BIN_WIDTH}) AS INT), {100 // HISTOGRAM_BIN_WIDTH - 1})""",  # nosec B608  # only module constants are formatted in; values are bound parameters
          "one batch counted by region, age band, smoker, category, review flag and histogram bin "
          "(a few thousand rows at most): the Risk page's numbers, histogram and mix, for any filter"),
    Query("review_queue", f"""
    SELECT patient_natural_key, risk_score, risk_category, predicted_annual_charges,
           interval_lower, interval_upper, review_reasons, region, age_band, smoker,
           age, bmi, children, {", ".join(EXPLANATION_COLUMNS)}, {TOP_REASONS_COLUMN}
    FROM {{ml_patient_predictions}}
    WHERE {_RISK_FILTER} AND requires_review
    ORDER BY risk_score DESC, patient_natural_key
    LIMIT {REVIEW_QUEUE_ROWS}""", "members flagged for review (de-identified key, reasons, explanation)"),  # nosec B608  # only module constants are formatted in; values are bound parameters
    Query("risk_export", f"""
    SELECT patient_natural_key, scoring_date, predicted_annual_charges, risk_score, risk_category,
           interval_lower, interval_upper, {IS_CRITICAL_RISK}, requires_review, review_reasons,
           age_band, smoker, region, children, bmi, model_version
    FROM {{ml_patient_predictions}}
    WHERE {_RISK_FILTER}
    ORDER BY patient_natural_key
    LIMIT {MAX_CSV_ROWS}""", "the filtered view as rows, for the CSV download only"),  # nosec B608  # only module constants are formatted in; values are bound parameters
    # -- monitoring ----------------------------------------------------------------------
    Query("open_alerts", """
    SELECT severity, COUNT(*) AS alerts
    FROM {ml_model_alerts}
    WHERE acknowledged_at IS NULL
    GROUP BY severity""", "open (unacknowledged) alerts per severity"),
    Query("alerts", """
    SELECT alert_id, created_at, type AS alert_type, severity, message, column_name, value, threshold,
           window_start, window_end, acknowledged_by, acknowledged_at, acknowledged_comment, retrain_run_id
    FROM {ml_model_alerts}
    WHERE (:state = 'all' OR acknowledged_at IS NULL)
    ORDER BY created_at DESC, alert_id
    LIMIT 500""", "alerts, newest first; state 'open' or 'all'"),
    Query("composite_drift", """
    SELECT run_id, window_start, window_end, value, threshold, status, computed_at
    FROM {ml_drift_metrics}
    WHERE metric = 'composite_drift'
    ORDER BY window_end, computed_at
    LIMIT 1000""", "composite drift score per monitoring run"),
    Query("psi_history", """
    SELECT run_id, window_end, column_name, value, status, computed_at
    FROM {ml_drift_metrics}
    WHERE metric = 'psi'
    ORDER BY window_end, computed_at, column_name
    LIMIT 20000""", "PSI per feature per monitoring run"),
    Query("drift_run_metrics", """
    SELECT column_name, metric, value, threshold, status, group_value
    FROM {ml_drift_metrics}
    WHERE run_id = :run_id
    ORDER BY column_name, metric""", "every drift metric of one monitoring run"),
    Query("estimated_mae_history", """
    SELECT window_end, computed_at, column_name, metric, value, status, group_value AS reason
    FROM {ml_drift_metrics}
    WHERE metric IN ('estimated_mae', 'estimated_mae_lower', 'estimated_mae_upper')
       OR (column_name = 'prediction' AND metric = 'mae')
    ORDER BY window_end, computed_at, column_name, metric
    LIMIT 5000""", "the label-free MAE estimate with its interval per run, and the labelled batch's realised MAE"),
    Query("fairness_runs", """
    SELECT run_id, window_start, window_end, MAX(computed_at) AS computed_at, COUNT(*) AS group_rows
    FROM {ml_fairness_metrics}
    GROUP BY run_id, window_start, window_end
    ORDER BY computed_at DESC
    LIMIT 500""", "monitoring runs with fairness metrics, newest first"),
    Query("fairness_for_run", """
    SELECT group_column, group_value, n, mae, risk_score_mae, calibration_ratio, relative_calibration,
           critical_share
    FROM {ml_fairness_metrics}
    WHERE run_id = :run_id
    ORDER BY group_column, group_value""", "per-group fairness metrics of one run"),
    Query("fairness_checks_for_run", """
    SELECT column_name AS group_column, metric, value, threshold, status, group_value AS worst_group
    FROM {ml_drift_metrics}
    WHERE run_id = :run_id AND metric IN ('fairness_mae_ratio', 'calibration_ratio_worst', 'critical_share_four_fifths')
    ORDER BY column_name, metric""", "the fairness verdicts monitoring recorded for one run"),
    Query("fairness_history", """
    SELECT run_id, window_end, group_column, group_value, n, mae, calibration_ratio, relative_calibration,
           critical_share, computed_at
    FROM {ml_fairness_metrics}
    ORDER BY window_end, computed_at, group_column, group_value
    LIMIT 20000""", "per-group fairness metrics over time"),
    # -- governance ----------------------------------------------------------------------
    Query("audit_log", """
    SELECT event_time, version, action, actor, role AS actor_role, comment, override_reason,
           hard_checks_passed, approval_mode, event_id
    FROM {model_governance_log}
    WHERE model_name = :model_name
    ORDER BY event_time DESC, event_id
    LIMIT 500""", "the model's governance audit log, newest first"),
    Query("validations", """
    SELECT version, event_time, checks, hard_checks_passed
    FROM {model_governance_log}
    WHERE model_name = :model_name AND action = :action
    ORDER BY event_time DESC
    LIMIT 200""", "recorded validations (the checklist of each version), newest first"),
    Query("champion_since", """
    SELECT version, MAX(event_time) AS since
    FROM {model_governance_log}
    WHERE model_name = :model_name AND (action = 'promoted' OR action = 'rolled back')
    GROUP BY version""", "when each version last became champion"),
    # -- jobs ----------------------------------------------------------------------------
    Query("job_runs", """
    SELECT run_id, job_key, status, trigger, start_time, end_time, duration_seconds, error
    FROM {job_runs}
    WHERE parent_run_id IS NULL
    ORDER BY start_time DESC, run_id DESC
    LIMIT 200""", "local job runs, newest first"),
    Query("running_jobs", """
    SELECT s.event_time AS start_time, s.actor AS trigger, s.comment
    FROM {model_governance_log} s
    WHERE s.action = 'job run started' AND NOT EXISTS (
        SELECT 1 FROM {model_governance_log} e
        WHERE e.action = 'job run ended' AND e.comment LIKE s.comment || ' %')
    ORDER BY s.event_time DESC
    LIMIT 50""", "local job runs started and not ended yet (the runner writes job_runs when a run ends)"),
    Query("task_runs", """
    SELECT run_id, task_key, status, start_time, end_time, duration_seconds, error
    FROM {job_runs}
    WHERE parent_run_id = :run_id
    ORDER BY start_time, run_id""", "the task runs of one local job run"),
]
QUERIES: dict[str, Query] = {q.name: q for q in _QUERIES}

_OUTSIDE = [q.name for q in _QUERIES if not set(q.tables) <= set(CONSOLE_TABLES)]
if _OUTSIDE:   # table names only from the registry, never the personal-data tables
    raise RuntimeError(f"console queries read tables the console may not: {', '.join(_OUTSIDE)}")


# -- frames the pages build from the queries --------------------------------------------------

def category_mix(counts: pd.DataFrame) -> pd.DataFrame:
    """Members per category (the ``category_counts`` query) in the order low, medium, high, critical,
    with shares; a category nobody is in shows 0."""
    order = [label for _, label in RISK_CATEGORIES]
    frame = pd.DataFrame({"risk_category": order})
    if not counts.empty:
        frame = frame.merge(counts, on="risk_category", how="left")
    else:
        frame["members"] = 0
    frame["members"] = frame["members"].fillna(0).astype("int64")
    total = int(frame["members"].sum())
    frame["share"] = frame["members"] / total if total else 0.0
    return frame


def risk_filters(scoring_date, region: str = ALL, age_band: str = ALL, smoker: str = ALL) -> dict:
    return {"scoring_date": scoring_date, "region": region or ALL, "age_band": age_band or ALL,
            "smoker": smoker or ALL}


def risk_view(cube: pd.DataFrame, region: str = ALL, age_band: str = ALL, smoker: str = ALL) -> dict:
    """The Risk page's numbers, histogram bins and category mix for one filter, from ``risk_cube``."""
    part = cube
    if region:
        part = part[part["region"] == region]
    if age_band:
        part = part[part["age_band"] == age_band]
    if smoker:
        part = part[part["smoker"] == (smoker == "yes")]
    members = int(part["members"].sum())
    critical = int(part.loc[part["risk_category"] == RiskBand.CRITICAL.value, "members"].sum())
    summary = {"members": members,
               "review": int(part.loc[part["requires_review"].astype(bool), "members"].sum()),
               RiskBand.CRITICAL.value: critical,
               "mean_predicted": float(part["sum_predicted"].sum()) / members if members else None}
    bins = part.groupby("bin_index", as_index=False)["members"].sum()
    labelled = part.assign(smoker=part["smoker"].map({True: "smoker", False: "non-smoker"}))
    mix = pd.concat([labelled.groupby([column, "risk_category"], as_index=False)["members"].sum()
                     .rename(columns={column: "dimension_value"}).assign(dimension=column)
                     for column in SCORED_RATING_FACTORS], ignore_index=True)
    return {"summary": summary, "bins": bins, "mix": mix[["dimension", "dimension_value", "risk_category", "members"]]}


