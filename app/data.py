"""Every read the console makes, in one module: SQL, the model registry, the jobs, real-time scoring.

SQL
    Each query is a named, parameterised SQL text (``:name`` markers) in ``QUERIES``. Table
    names are placeholders (``{ml_patient_predictions}``) that only ``settings.tables.fqn``
    fills in, so the same text runs on DuckDB over the local Delta tables and on a
    Databricks SQL warehouse (Spark SQL); ``tests/test_console_sql.py`` runs every query on
    both DuckDB and Spark. Charts are aggregated in SQL (counts, histogram bins): no query
    but the CSV export returns more than a few thousand rows.

Engines
    Locally: the views of ``LocalSqlEngine`` (DuckDB over each table's latest Delta
    version), without the personal-data tables, kept open while no table has a new
    version. On Databricks: ``databricks-sql-connector`` to the warehouse named by
    ``DATABRICKS_WAREHOUSE_ID`` (app.yaml ``valueFrom: sql-warehouse``) as the app's
    service principal, or on behalf of the user (``X-Forwarded-Access-Token``) when
    $HEALTHCARE_MLOPS_SQL_AS_USER is ``true``. Connections are cached with
    ``st.cache_resource``, results with ``st.cache_data`` for ``QUERY_TTL_SECONDS`` (and
    locally also keyed on the tables' versions); ``clear_caches()`` runs after every action.

Target and home
    $HEALTHCARE_MLOPS_TARGET (default ``local``) and $HEALTHCARE_MLOPS_HOME; on Databricks
    Apps, $DATABRICKS_APP_NAME names the bundle target whose console app this is, and the
    catalog and schema come from that target's bundle variables.

The console never reads ``silver_patients`` or ``dim_patients`` (names, SSN, ZIP, dates
of birth): only the de-identified tables past the feature step are queryable here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import string
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import streamlit as st

from healthcare_mlops import tables as T
from healthcare_mlops.bundle.run_history import FAILED, SUCCEEDED, TIMED_OUT, UPSTREAM_FAILED
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import LOCAL_TARGET, Settings, resolve_home, resolve_settings

TARGET_ENV = "HEALTHCARE_MLOPS_TARGET"
APP_NAME_ENV = "DATABRICKS_APP_NAME"                 # set by Databricks Apps
RUNTIME_ENV = "HEALTHCARE_MLOPS_RUNTIME"              # app.yaml: databricks
SCORING_URL_ENV = "HEALTHCARE_MLOPS_SCORING_URL"      # `healthcare-mlops serve`: http://host:port[/invocations]
SERVING_ENDPOINT_ENV = "HEALTHCARE_MLOPS_SERVING_ENDPOINT"   # optional; default: the target's serving_endpoint_name
EMAIL_HEADER = "X-Forwarded-Email"                    # set by Databricks Apps: the signed-in user
TOKEN_HEADER = "X-Forwarded-Access-Token"            # ... and their token, when the app asks for it
SQL_AS_USER_ENV = "HEALTHCARE_MLOPS_SQL_AS_USER"     # true: queries run with the user's token
JOB_ID_ENV_PREFIX = "HEALTHCARE_MLOPS_JOB_ID_"        # app.yaml valueFrom: job-<key>
QUERY_TTL_SECONDS = 30
MAX_CSV_ROWS = 2_000_000

# The only tables the console reads; the personal-data tables are never queryable here.
CONSOLE_TABLES = (T.ML_PATIENT_PREDICTIONS, T.ML_DRIFT_METRICS, T.ML_FAIRNESS_METRICS, T.ML_MODEL_ALERTS,
                  T.MODEL_GOVERNANCE_LOG, T.JOB_RUNS)
PERSONAL_TABLES = (T.SILVER_PATIENTS, T.DIM_PATIENTS)

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
    Query("batch_summary", """
    SELECT COUNT(*) AS members,
           SUM(CASE WHEN requires_review THEN 1 ELSE 0 END) AS review,
           SUM(CASE WHEN high_risk THEN 1 ELSE 0 END) AS high_risk,
           AVG(predicted_annual_charges) AS mean_predicted,
           MIN(model_version) AS model_version,
           COUNT(DISTINCT model_version) AS model_versions,
           MAX(scored_at) AS scored_at
    FROM {ml_patient_predictions}
    WHERE scoring_date = :scoring_date""", "one scored batch in numbers"),
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
             LEAST(CAST(FLOOR(risk_score / {HISTOGRAM_BIN_WIDTH}) AS INT), {100 // HISTOGRAM_BIN_WIDTH - 1})""",
          "one batch counted by region, age band, smoker, category, review flag and histogram bin "
          "(a few thousand rows at most): the Risk page's numbers, histogram and mix, for any filter"),
    Query("review_queue", f"""
    SELECT patient_natural_key, risk_score, risk_category, predicted_annual_charges,
           interval_lower, interval_upper, review_reasons, region, age_band, smoker
    FROM {{ml_patient_predictions}}
    WHERE {_RISK_FILTER} AND requires_review
    ORDER BY risk_score DESC, patient_natural_key
    LIMIT {REVIEW_QUEUE_ROWS}""", "members flagged for review (de-identified key and reasons)"),
    Query("risk_export", f"""
    SELECT patient_natural_key, scoring_date, predicted_annual_charges, risk_score, risk_category,
           interval_lower, interval_upper, high_risk, requires_review, review_reasons,
           age_band, smoker, region, children, bmi, model_version
    FROM {{ml_patient_predictions}}
    WHERE {_RISK_FILTER}
    ORDER BY patient_natural_key
    LIMIT {MAX_CSV_ROWS}""", "the filtered view as rows, for the CSV download only"),
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
    SELECT column_name, metric, value, threshold, status
    FROM {ml_drift_metrics}
    WHERE run_id = :run_id
    ORDER BY column_name, metric""", "every drift metric of one monitoring run"),
    Query("fairness_runs", """
    SELECT run_id, window_start, window_end, MAX(computed_at) AS computed_at, COUNT(*) AS group_rows
    FROM {ml_fairness_metrics}
    GROUP BY run_id, window_start, window_end
    ORDER BY computed_at DESC
    LIMIT 500""", "monitoring runs with fairness metrics, newest first"),
    Query("fairness_for_run", """
    SELECT group_column, group_value, n, mae, risk_score_mae, calibration_ratio, critical_share
    FROM {ml_fairness_metrics}
    WHERE run_id = :run_id
    ORDER BY group_column, group_value""", "per-group fairness metrics of one run"),
    Query("fairness_checks_for_run", """
    SELECT column_name AS group_column, metric, value, threshold, status, group_value AS worst_group
    FROM {ml_drift_metrics}
    WHERE run_id = :run_id AND metric IN ('fairness_mae_ratio', 'calibration_ratio_worst', 'critical_share_four_fifths')
    ORDER BY column_name, metric""", "the fairness verdicts monitoring recorded for one run"),
    Query("fairness_history", """
    SELECT run_id, window_end, group_column, group_value, n, mae, calibration_ratio, critical_share, computed_at
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
    Query("task_runs", """
    SELECT run_id, task_key, status, start_time, end_time, duration_seconds, error
    FROM {job_runs}
    WHERE parent_run_id = :run_id
    ORDER BY start_time, run_id""", "the task runs of one local job run"),
]
QUERIES: dict[str, Query] = {q.name: q for q in _QUERIES}

for _q in _QUERIES:   # table names only from the registry, never the personal-data tables
    assert set(_q.tables) <= set(CONSOLE_TABLES), f"query {_q.name} reads {_q.tables}"


# -- target, home and settings -------------------------------------------------------------

def on_databricks() -> bool:
    return bool(os.environ.get(APP_NAME_ENV)) or os.environ.get(RUNTIME_ENV) == "databricks"


def console_target() -> str:
    """$HEALTHCARE_MLOPS_TARGET, else the target whose app is $DATABRICKS_APP_NAME, else local."""
    explicit = os.environ.get(TARGET_ENV)
    if explicit:
        return explicit
    app_name = os.environ.get(APP_NAME_ENV)
    if app_name:
        target = _target_for_app(app_name)
        if target is None:
            raise UserError(f"the app '{app_name}' is not the console of any bundle target "
                            f"(databricks.yml app_name); set {TARGET_ENV} in app.yaml")
        return target
    return LOCAL_TARGET


@st.cache_resource(show_spinner=False)
def _target_for_app(app_name: str) -> str | None:
    from healthcare_mlops.bundle.definition import load_bundle

    return load_bundle().target_for_app_name(app_name)


@st.cache_resource(show_spinner=False)
def _settings_for(target: str, home: str) -> Settings:
    return resolve_settings(target, home)


def _home() -> str:
    return str(resolve_home(None).resolve())


def console_settings() -> Settings:
    """The console's settings (target, catalog, schema, home, thresholds), resolved once."""
    return _settings_for(console_target(), _home())


def _key(settings: Settings) -> tuple:
    return (settings.target, str(settings.home.resolve()), settings.catalog, settings.schema)


# -- engines ---------------------------------------------------------------------------------

def _arrow_of(relation) -> pa.Table:
    """A DuckDB relation's rows as Arrow (``to_arrow_table`` in DuckDB 1.4+, ``arrow`` before)."""
    return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()


def _sql_string(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _partition_text(value) -> str:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)


def native_parquet_view(connection, store, name: str, view: str) -> bool:
    """Point ``view`` at DuckDB's own Parquet reader over the table's current files.

    ``LocalSqlEngine`` exposes each Delta snapshot as a pyarrow dataset; DuckDB reads the same
    files about three times faster natively (and prunes partitions by the hive-style folder
    names). The native view replaces the dataset view only when it is provably the same table:
    every file's folder names carry exactly its Delta partition values, and the columns and
    their types are identical. Otherwise the dataset view stays. Returns whether it replaced it.
    """
    import urllib.parse

    import duckdb

    table = store.delta_table(name)
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return False
    partitions = list(table.metadata().partition_columns)
    root = urllib.parse.unquote(urllib.parse.urlparse(table.table_uri).path) \
        if "://" in table.table_uri else table.table_uri
    files = []
    for row in actions.select(["path", *(f"partition.{c}" for c in partitions)]).to_pylist():
        relative = urllib.parse.unquote(row["path"])
        segments = relative.split("/")
        for column in partitions:
            value = row[f"partition.{column}"]
            if value is None or f"{column}={_partition_text(value)}" not in segments:
                return False
        files.append(os.path.join(root, relative))
    expected = connection.execute(f"DESCRIBE {view}").fetchall()
    types = {column: kind for column, kind, *_ in expected}
    hive = ", ".join(f"{_sql_string(c)}: {_sql_string(types[c])}" for c in partitions)
    source = (f"read_parquet([{', '.join(_sql_string(f) for f in files)}], union_by_name = true"
              + (f", hive_partitioning = true, hive_types = {{{hive}}}" if partitions else ", hive_partitioning = false")
              + ")")
    select = f"SELECT {', '.join(chr(34) + c + chr(34) for c, *_ in expected)} FROM {source}"
    try:
        native = connection.execute(f"DESCRIBE {select}").fetchall()
    except duckdb.Error:   # a file DuckDB cannot read the same way: keep the dataset view
        return False
    if [(c, k) for c, k, *_ in native] != [(c, k) for c, k, *_ in expected]:
        return False
    connection.execute(f"CREATE OR REPLACE VIEW {view} AS {select}")
    return True


class LocalConsoleEngine:
    """DuckDB over the console's tables (``LocalSqlEngine``'s views, read natively where the
    same), without the personal-data tables; one query at a time."""

    def __init__(self, settings: Settings):
        from healthcare_mlops.runtime.sql_engine import LocalSqlEngine

        self.settings = settings
        engine = LocalSqlEngine(settings)
        self.connection = engine.connect()
        schema = f'"{settings.catalog}"."{settings.schema}"'
        for name in PERSONAL_TABLES:
            self.connection.execute(f'DROP VIEW IF EXISTS {schema}."{name}"')
            self.connection.unregister(f"__delta_{name}")       # a no-op when it was never registered
        self.native = {name for name in CONSOLE_TABLES if engine.store.exists(name)
                       and native_parquet_view(self.connection, engine.store, name, f'{schema}."{name}"')}
        self.lock = threading.Lock()

    def arrow(self, sql: str, params: dict) -> pa.Table:
        import duckdb

        from healthcare_mlops.runtime.sql_engine import duckdb_parameters

        with self.lock:
            try:
                return _arrow_of(self.connection.sql(duckdb_parameters(sql), params=params or None))
            except duckdb.Error as exc:
                raise UserError(f"query failed: {str(exc).splitlines()[0]}") from exc


class WarehouseConsoleEngine:
    """A Databricks SQL warehouse connection, reopened once if it went stale."""

    def __init__(self, settings: Settings, user_token: str | None = None):
        from healthcare_mlops.runtime.databricks_sql import DatabricksSqlEngine

        self.settings = settings
        self.engine = DatabricksSqlEngine(settings, user_token)
        self.connection = None
        self.lock = threading.Lock()

    def _run(self, work):
        from databricks.sql.exc import Error as DatabricksSqlError

        with self.lock:
            for attempt in (1, 2):
                try:
                    if self.connection is None:
                        self.connection = self.engine.connect()
                    with self.connection.cursor() as cursor:
                        return work(cursor)
                except UserError:
                    raise
                except Exception as exc:
                    try:
                        if self.connection is not None:
                            self.connection.close()
                    except DatabricksSqlError:
                        pass   # the connection is already broken; a new one follows
                    self.connection = None
                    if attempt == 2:
                        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                        raise UserError(f"query failed on the SQL warehouse: {first}") from exc

    def arrow(self, sql: str, params: dict) -> pa.Table:
        def work(cursor):
            cursor.execute(sql, params)
            return cursor.fetchall_arrow()
        return self._run(work)

    def table_names(self) -> set[str]:
        def work(cursor):
            cursor.tables(catalog_name=self.settings.catalog, schema_name=self.settings.schema)
            return {str(row[2]).lower() for row in cursor.fetchall()}   # TABLE_CAT, TABLE_SCHEM, TABLE_NAME
        return self._run(work)


@st.cache_resource(show_spinner=False, max_entries=4)
def _local_engine(key: tuple, versions: tuple, _settings: Settings) -> LocalConsoleEngine:
    return LocalConsoleEngine(_settings)


@st.cache_resource(show_spinner=False, max_entries=64)
def _warehouse_engine(key: tuple, token_hash: str, _settings: Settings, _token: str | None) -> WarehouseConsoleEngine:
    return WarehouseConsoleEngine(_settings, _token)


def request_header(name: str) -> str | None:
    """A header of the browser's request (Databricks Apps forwards the user's); None outside a session."""
    headers = st.context.headers          # empty outside a browser session (a script, AppTest)
    return headers.get(name) if headers else None


def user_token() -> str | None:
    """The user's token when queries run on behalf of the user (Databricks Apps OBO)."""
    if os.environ.get(SQL_AS_USER_ENV, "").lower() not in ("1", "true", "yes"):
        return None
    return request_header(TOKEN_HEADER)


def _digest(value: str | None) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16] if value else "service-principal"


def _table_versions(settings: Settings) -> dict:
    """Locally: each console table's latest Delta commit (None when it does not exist)."""
    versions = {}
    for name in CONSOLE_TABLES:
        log = Path(settings.table_location(name)) / "_delta_log"
        try:
            commits = [int(entry.name[:-5]) for entry in os.scandir(log)
                       if entry.name.endswith(".json") and entry.name[:-5].isdigit()]
        except (FileNotFoundError, NotADirectoryError):
            commits = []
        versions[name] = max(commits) if commits else None
    return versions


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def _warehouse_tables(key: tuple, token_hash: str) -> frozenset:
    settings = console_settings()
    engine = _warehouse_engine(key, token_hash, settings, user_token())
    return frozenset(engine.table_names())


def existing_tables() -> set[str]:
    """The console tables that exist now."""
    settings = console_settings()
    if settings.is_local:
        return {name for name, version in _table_versions(settings).items() if version is not None}
    token = user_token()
    return set(_warehouse_tables(_key(settings), _digest(token))) & set(CONSOLE_TABLES)


def has_table(name: str) -> bool:
    return name in existing_tables()


def _engine(settings: Settings, versions: dict | None = None):
    if settings.is_local:
        versions = versions if versions is not None else _table_versions(settings)
        return _local_engine(_key(settings), tuple(sorted(versions.items())), settings)
    token = user_token()
    return _warehouse_engine(_key(settings), _digest(token), settings, token)


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False, max_entries=512)
def _cached_frame(key: tuple, name: str, params: tuple, fingerprint: tuple, _settings: Settings) -> pd.DataFrame:
    return _run(_settings, QUERIES[name], dict(params))


def _run(settings: Settings, query: Query, params: dict) -> pd.DataFrame:
    table = _engine(settings).arrow(query.sql(settings), query.bind(params))
    return table.to_pandas(date_as_object=True)


def query(name: str, **params) -> pd.DataFrame:
    """Run the named query with ``params``; empty (no columns) when one of its tables does not exist."""
    settings = console_settings()
    q = QUERIES[name]
    if settings.is_local:
        versions = _table_versions(settings)
        if any(versions[t] is None for t in q.tables):
            return pd.DataFrame()
        fingerprint = tuple(sorted(versions.items()))
    else:
        if not set(q.tables) <= existing_tables():
            return pd.DataFrame()
        fingerprint = (_digest(request_header(EMAIL_HEADER)),)
    bound = q.bind(params)
    return _cached_frame(_key(settings), name, tuple(sorted(bound.items())), fingerprint, settings)


def query_arrow(name: str, settings: Settings | None = None, user_token_value: str | None = None,
                **params) -> pa.Table:
    """An uncached query as Arrow (the CSV export; may run outside the page's script thread)."""
    settings = settings or console_settings()
    q = QUERIES[name]
    if settings.is_local:
        engine = LocalConsoleEngine(settings)
    else:
        engine = WarehouseConsoleEngine(settings, user_token_value)
    return engine.arrow(q.sql(settings), q.bind(params))


def export_csv(name: str, settings: Settings | None = None, user_token_value: str | None = None,
               **params) -> bytes:
    """A query's rows as CSV bytes, written by Arrow (no pandas for the large export)."""
    import io

    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    pacsv.write_csv(query_arrow(name, settings, user_token_value, **params), buffer)
    return buffer.getvalue()


def clear_caches() -> None:
    """Forget cached results (after an action, so the page shows its effect at once)."""
    _cached_frame.clear()
    _warehouse_tables.clear()
    _registry_cached.clear()
    _model_card_cached.clear()
    _databricks_runs_cached.clear()


# -- page-level reads built on the queries ------------------------------------------------------

def latest_scoring_date() -> dt.date | None:
    dates = query("scoring_dates")
    return None if dates.empty else dates["scoring_date"].iloc[0]


def category_counts(scoring_date: dt.date) -> pd.DataFrame:
    """Members per category in the order low, medium, high, critical, with shares."""
    from healthcare_mlops.modeling.risk import RISK_CATEGORIES

    counts = query("category_counts", scoring_date=scoring_date)
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
    summary = {"members": members,
               "review": int(part.loc[part["requires_review"].astype(bool), "members"].sum()),
               "critical": int(part.loc[part["risk_category"] == "critical", "members"].sum()),
               "mean_predicted": float(part["sum_predicted"].sum()) / members if members else None}
    bins = part.groupby("bin_index", as_index=False)["members"].sum()
    labelled = part.assign(smoker=part["smoker"].map({True: "smoker", False: "non-smoker"}))
    mix = pd.concat([labelled.groupby([column, "risk_category"], as_index=False)["members"].sum()
                     .rename(columns={column: "dimension_value"}).assign(dimension=column)
                     for column in ("region", "age_band", "smoker")], ignore_index=True)
    return {"summary": summary, "bins": bins, "mix": mix[["dimension", "dimension_value", "risk_category", "members"]]}


def open_alert_counts() -> dict:
    frame = query("open_alerts")
    return {} if frame.empty else {str(k): int(v) for k, v in zip(frame["severity"], frame["alerts"])}


def checks_by_version(model_name: str) -> dict:
    """The latest recorded checklist of each version: version -> list of check dicts."""
    from healthcare_mlops.governance import audit

    frame = query("validations", model_name=model_name, action=audit.VALIDATED)
    result: dict = {}
    for _, row in frame.iterrows():
        version = str(row["version"])
        if version not in result:
            result[version] = audit.decoded_checks(row)
    return result


# -- the model registry -------------------------------------------------------------------------

def _registry_fingerprint(settings: Settings):
    if not settings.is_local:
        return None
    database = settings.mlflow_dir / "mlflow.db"
    try:
        return database.stat().st_mtime_ns
    except FileNotFoundError:
        return None


@st.cache_resource(show_spinner=False, max_entries=8)
def _mlflow_client(key: tuple, _settings: Settings):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=_settings.tracking_uri, registry_uri=_settings.registry_uri)


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False, max_entries=32)
def _registry_cached(key: tuple, fingerprint, _settings: Settings) -> dict:
    from healthcare_mlops.runtime.mlflow_setup import find_in_registry

    client = _mlflow_client(key, _settings)
    name = _settings.model_name
    model = find_in_registry(client.get_registered_model, name)
    if model is None:
        return {"model_name": name, "exists": False, "champion": None, "challenger": None,
                "versions": pd.DataFrame()}
    aliases = dict(getattr(model, "aliases", None) or {})
    versions = client.search_model_versions(f"name = '{name}'")
    by_version: dict = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    rows = [{
        "version": int(v.version),
        "aliases": ", ".join(sorted(by_version.get(str(v.version), []))),
        "status": (v.tags or {}).get("governance_status", ""),
        "registered": pd.Timestamp(int(v.creation_timestamp), unit="ms", tz="UTC") if v.creation_timestamp else pd.NaT,
        "run_id": v.run_id,
    } for v in versions]
    frame = pd.DataFrame(rows).sort_values("version", ascending=False).reset_index(drop=True) if rows \
        else pd.DataFrame()
    return {"model_name": name, "exists": True,
            "champion": int(aliases["champion"]) if "champion" in aliases else None,
            "challenger": int(aliases["challenger"]) if "challenger" in aliases else None,
            "versions": frame}


def registry() -> dict:
    """The registered model: champion and challenger versions and every version's status.

    ``exists`` is False when no model is registered yet (or, locally, no MLflow database).
    """
    settings = console_settings()
    fingerprint = _registry_fingerprint(settings)
    if settings.is_local and fingerprint is None:
        return {"model_name": settings.model_name, "exists": False, "champion": None, "challenger": None,
                "versions": pd.DataFrame()}
    return _registry_cached(_key(settings), fingerprint, settings)


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False, max_entries=32)
def _model_card_cached(key: tuple, version: str, fingerprint, _settings: Settings) -> str:
    from healthcare_mlops.runtime.mlflow_setup import find_in_registry

    found = find_in_registry(_mlflow_client(key, _settings).get_model_version, _settings.model_name, version)
    return (found.description or "") if found is not None else ""


def model_card(version) -> str:
    """The model card (Markdown) stored in the version's description."""
    settings = console_settings()
    return _model_card_cached(_key(settings), str(version), _registry_fingerprint(settings), settings)


# -- the bundle's jobs and their runs ------------------------------------------------------------

@st.cache_resource(show_spinner=False)
def _bundle_jobs(target: str) -> list[dict]:
    from healthcare_mlops.bundle.definition import load_bundle
    from healthcare_mlops.bundle.runner import describe_jobs

    return describe_jobs(load_bundle(), target)


def bundle_jobs() -> list[dict]:
    """Every job of the bundle: key, name, schedule, parameters (with defaults) and tasks."""
    return _bundle_jobs(console_settings().target)


def job_id_env(job_key: str) -> str:
    return JOB_ID_ENV_PREFIX + job_key.upper()


def databricks_job_id(job_key: str) -> int | None:
    value = os.environ.get(job_id_env(job_key))
    return int(value) if value and value.isdigit() else None


@st.cache_resource(show_spinner=False)
def workspace_client():
    """databricks-sdk as the app's service principal (credentials from the Apps environment)."""
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()


# Databricks result states in the runner's words (bundle/run_history.py), so one page and one
# colour map serve both runtimes; a state not listed (RUNNING, QUEUED ...) is shown as it is.
DATABRICKS_STATUS = {"SUCCESS": SUCCEEDED, "SUCCESS_WITH_FAILURES": FAILED, "TIMEDOUT": TIMED_OUT,
                     "UPSTREAM_CANCELED": UPSTREAM_FAILED}


def databricks_status(state) -> str:
    """A run's state (``jobs.RunState``) as the runner names it: its result, else its life cycle."""
    result = getattr(state, "result_state", None) if state else None
    life = getattr(state, "life_cycle_state", None) if state else None
    status = getattr(result or life, "value", result or life)
    return DATABRICKS_STATUS.get(str(status or ""), str(status or ""))


def _millis(value) -> pd.Timestamp:
    return pd.Timestamp(int(value), unit="ms", tz="UTC") if value else pd.NaT


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def _databricks_runs_cached(job_keys: tuple) -> pd.DataFrame:
    client = workspace_client()
    rows = []
    for job_key in job_keys:
        job_id = databricks_job_id(job_key)
        if job_id is None:
            continue
        for run in client.jobs.list_runs(job_id=job_id, limit=25):
            state = run.state
            start, end = _millis(run.start_time), _millis(run.end_time)
            duration = (run.run_duration or 0) / 1000 if run.run_duration else (
                (end - start).total_seconds() if pd.notna(start) and pd.notna(end) else None)
            rows.append({"run_id": run.run_id, "job_key": job_key, "status": databricks_status(state),
                         "trigger": str(getattr(run.trigger, "value", run.trigger) or ""),
                         "start_time": start, "end_time": end, "duration_seconds": duration,
                         "error": getattr(state, "state_message", None) if state else None,
                         "url": run.run_page_url})
            if len(rows) > 500:
                break
    frame = pd.DataFrame(rows)
    return frame.sort_values("start_time", ascending=False).reset_index(drop=True) if rows else frame


def job_runs() -> pd.DataFrame:
    """Recent job runs, newest first: the local runner's ``job_runs`` table or the workspace's runs."""
    settings = console_settings()
    if settings.is_local:
        return query("job_runs")
    return _databricks_runs_cached(tuple(job["job_key"] for job in bundle_jobs()))


def task_runs(run_id: int) -> pd.DataFrame:
    if not console_settings().is_local:
        return pd.DataFrame()
    return query("task_runs", run_id=int(run_id))


# -- real-time scoring ------------------------------------------------------------------------------

@st.cache_resource(show_spinner="Loading the champion model ...", max_entries=2)
def _champion_model(key: tuple, version: int, _settings: Settings):
    import mlflow.pyfunc

    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow

    configure_mlflow(_settings)
    return mlflow.pyfunc.load_model(f"models:/{_settings.model_name}/{version}")


def scoring_route() -> str:
    """How the Score page scores: the serving endpoint, a local scoring server, or the champion in-process."""
    settings = console_settings()
    if not settings.is_local:
        return f"Model Serving endpoint {serving_endpoint_name()}"
    url = os.environ.get(SCORING_URL_ENV)
    return f"local scoring server {url}" if url else "the champion loaded from the local registry"


def serving_endpoint_name() -> str:
    """The endpoint the Score page queries on Databricks ('' when the target serves none)."""
    return (os.environ.get(SERVING_ENDPOINT_ENV) or str(console_settings().variables.get("serving_endpoint_name")
                                                         or "")).strip()


def query_serving_endpoint(client, name: str, record: dict) -> dict:
    """One record scored by the Model Serving endpoint ``name``; workspace errors become UserErrors."""
    from databricks.sdk.errors import DatabricksError, NotFound

    if not name:
        raise UserError("this target has no serving endpoint (the bundle variable serving_endpoint_name is empty)")
    try:
        response = client.serving_endpoints.query(name=name, dataframe_records=[record])
    except NotFound:
        raise UserError(f"serving endpoint {name} does not exist yet: it is created when a model version first "
                        "becomes champion (run ml_training_pipeline, or approve a challenger)") from None
    except DatabricksError as exc:           # 400 names the field (the model's input contract), 403, 503 ...
        raise UserError(f"serving endpoint {name} refused the request: {exc}") from None
    return _first_prediction({"predictions": response.predictions})


def _first_prediction(payload) -> dict:
    predictions = payload.get("predictions") if isinstance(payload, dict) else payload
    if isinstance(predictions, dict):                 # column -> values (dataframe "split"/"columns")
        return {k: (v[0] if isinstance(v, list) else v) for k, v in predictions.items()}
    if isinstance(predictions, list) and predictions:
        return dict(predictions[0])
    raise UserError(f"the scoring response has no prediction: {str(payload)[:200]}")


def score_member(record: dict) -> dict:
    """Score one member's model inputs in real time; predicted charges, score, category, interval."""
    settings = console_settings()
    if not settings.is_local:
        return query_serving_endpoint(workspace_client(), serving_endpoint_name(), record)
    url = os.environ.get(SCORING_URL_ENV)
    if url:
        body = json.dumps({"dataframe_records": [record]}).encode()
        endpoint = url.rstrip("/")
        if not endpoint.endswith("/invocations"):      # the server's address or its endpoint
            endpoint += "/invocations"
        request = urllib.request.Request(endpoint, data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return _first_prediction(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except (ValueError, AttributeError):
                pass   # not JSON: the body as it is
            raise UserError(f"the scoring server refused the request ({exc.code}): {detail}") from exc
        except urllib.error.URLError as exc:
            raise UserError(f"the scoring server at {url} is not reachable: {exc.reason}") from exc
    champion = registry()["champion"]
    if champion is None:
        raise UserError("there is no champion model to score with yet")
    from mlflow.exceptions import MlflowException

    try:
        result = _champion_model(_key(settings), champion, settings).predict(pd.DataFrame([record]))
    except MlflowException as exc:
        raise UserError(str(exc.message if hasattr(exc, "message") else exc)) from exc
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in result.iloc[0].to_dict().items()}


# -- what to run when something is missing --------------------------------------------------------

def run_hint(job_key: str, params: dict | None = None) -> str:
    """The command (locally) or the job (on Databricks) that produces what a page is missing."""
    settings = console_settings()
    if settings.is_local:
        extra = "".join(f" --param {k}={v}" for k, v in (params or {}).items())
        return f"`healthcare-mlops jobs run {job_key}{extra}`"
    return (f"the `{job_key}` job (Jobs page, Run now; or `databricks bundle run -t {settings.target} "
            f"{job_key}`)")
