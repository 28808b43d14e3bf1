"""The console's data access with Streamlit caching: the one module pages read through.

A thin layer. What the console reads is defined elsewhere, without Streamlit: the SQL in
``app/queries.py``, the SQL engines in ``healthcare_mlops.runtime.console_sql``, the
registry in ``app/registry.py``, the workspace's job runs in
``healthcare_mlops.runtime.workspace_runs``, real-time scoring in
``healthcare_mlops.scoring.realtime``. Which engine, scorer and identity serve the
console's target is decided in ``healthcare_mlops.composition``; this module only caches.

Caching: engines, clients and loaded models with ``st.cache_resource``; results with
``st.cache_data``. Locally results are keyed on the tables' Delta versions and the registry
file, so a new commit shows at once and a result stays valid until then (kept up to
``KEYED_TTL_SECONDS``: a visit after a quiet half hour does not rerun every query); with
nothing to key on (a warehouse, the workspace registry) on the current ``QUERY_TTL_SECONDS``
window instead. ``clear_caches()`` runs after every action.

Target and home: $HEALTHCARE_MLOPS_TARGET (default ``local``) and $HEALTHCARE_MLOPS_HOME; on
Databricks Apps, $DATABRICKS_APP_NAME names the bundle target whose console app this is.
Queries run as the app's service principal, or on behalf of the user
(``X-Forwarded-Access-Token``) when $HEALTHCARE_MLOPS_SQL_AS_USER is ``true``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time

import pandas as pd
import pyarrow as pa
import streamlit as st

from app import queries
from app.queries import ALL, HISTOGRAM_BIN_WIDTH, MAX_CSV_ROWS, QUERIES, REVIEW_QUEUE_ROWS, risk_filters, risk_view
from app.registry import no_model, read_importance, read_model_card, read_registry
from healthcare_mlops import composition
from healthcare_mlops.bundle.launchers import job_id_env
from healthcare_mlops.modeling.artifacts import CHAMPION
from healthcare_mlops.settings import Settings, resolve_home, resolve_settings

__all__ = ["ALL", "HISTOGRAM_BIN_WIDTH", "MAX_CSV_ROWS", "QUERIES", "REVIEW_QUEUE_ROWS", "risk_filters",
           "risk_view"]

EMAIL_HEADER = "X-Forwarded-Email"                    # set by Databricks Apps: the signed-in user
TOKEN_HEADER = "X-Forwarded-Access-Token"            # ... and their token, when the app asks for it
SQL_AS_USER_ENV = "HEALTHCARE_MLOPS_SQL_AS_USER"     # true: queries run with the user's token
QUERY_TTL_SECONDS = 30             # results with no version to key on are this fresh
KEYED_TTL_SECONDS = 3600           # results keyed on versions: bounded memory, not freshness


# -- target, settings, the request ----------------------------------------------------------------

@st.cache_resource(show_spinner=False)
def _settings_for(target: str, home: str) -> Settings:
    return resolve_settings(target, home)


@st.cache_resource(show_spinner=False)
def _target(target_env: str | None, app_name: str | None) -> str:
    return composition.console_target({composition.TARGET_ENV: target_env, composition.APP_NAME_ENV: app_name})


def console_target() -> str:
    """The bundle target this console serves (see ``composition.console_target``)."""
    return _target(os.environ.get(composition.TARGET_ENV), os.environ.get(composition.APP_NAME_ENV))


# (the environment and working folder the settings depend on) -> Settings. Pages ask for the settings
# a dozen times per run; resolving the home's path and the cache's argument hashing each time
# was most of the data layer's time on a warm server, so they are remembered per process here.
_SETTINGS: dict[tuple, Settings] = {}


def console_settings() -> Settings:
    """The console's settings (target, catalog, schema, home, thresholds), resolved once."""
    key = (tuple(sorted(os.environ.items())), os.getcwd())
    if key not in _SETTINGS:
        _SETTINGS[key] = _settings_for(console_target(), str(resolve_home(None).resolve()))
    return _SETTINGS[key]


def facts() -> composition.RuntimeFacts:
    return composition.facts(console_settings())


def _freshness(version) -> tuple:
    """What a cached result is keyed on: the data's version when there is one, else the current
    ``QUERY_TTL_SECONDS`` window (the result is recomputed in the next one)."""
    return ("version", version) if version else ("window", int(time.time() // QUERY_TTL_SECONDS))


def _key(settings: Settings) -> tuple:
    return (settings.target, str(settings.home.resolve()), settings.catalog, settings.schema)


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


@st.cache_resource(show_spinner=False)
def workspace_client():
    """databricks-sdk as the app's service principal (credentials from the Apps environment)."""
    return composition.workspace_client()


# -- SQL ----------------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False, max_entries=64)
def _engine_cached(key: tuple, kind: type, snapshot: tuple, token_hash: str, _settings: Settings,
                   _token: str | None):
    return kind(_settings, _token)


def _engine(settings: Settings):
    token = user_token()
    return _engine_cached(_key(settings), composition.console_sql_engine(settings), _snapshot(settings),
                          _digest(token), settings, token)


@st.cache_data(ttl=KEYED_TTL_SECONDS, show_spinner=False, max_entries=64)
def _tables_cached(key: tuple, snapshot: tuple, token_hash: str) -> frozenset:
    return frozenset(_engine(console_settings()).table_names())


def _snapshot(settings: Settings) -> tuple:
    return composition.console_sql_engine(settings).snapshot(settings)


def _existing(settings: Settings, snapshot: tuple) -> frozenset:
    return _tables_cached(_key(settings), _freshness(snapshot), _digest(user_token()))


def existing_tables() -> set[str]:
    """The console tables that exist now."""
    settings = console_settings()
    return set(_existing(settings, _snapshot(settings)))


def has_table(name: str) -> bool:
    return name in existing_tables()


@st.cache_data(ttl=KEYED_TTL_SECONDS, show_spinner=False, max_entries=512)
def _cached_frame(key: tuple, name: str, params: tuple, fingerprint: tuple, _settings: Settings) -> pd.DataFrame:
    query_ = QUERIES[name]
    table = _engine(_settings).arrow(query_.sql(_settings), dict(params))
    return table.to_pandas(date_as_object=True)


def query(name: str, **params) -> pd.DataFrame:
    """Run the named query with ``params``; empty (no columns) when one of its tables does not exist."""
    settings = console_settings()
    q = QUERIES[name]
    snapshot = _snapshot(settings)
    if not set(q.tables) <= _existing(settings, snapshot):
        return pd.DataFrame()
    fingerprint = (_freshness(snapshot), _digest(request_header(EMAIL_HEADER)))
    bound = q.bind(params)
    return _cached_frame(_key(settings), name, tuple(sorted(bound.items())), fingerprint, settings)


def query_arrow(name: str, settings: Settings | None = None, user_token_value: str | None = None,
                **params) -> pa.Table:
    """An uncached query as Arrow on a fresh engine (the CSV export; may run outside the page's thread)."""
    settings = settings or console_settings()
    q = QUERIES[name]
    engine = composition.console_sql_engine(settings)(settings, user_token_value)
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
    _tables_cached.clear()
    _registry_cached.clear()
    _model_card_cached.clear()
    _workspace_runs_cached.clear()


# -- page-level reads built on the queries ------------------------------------------------------

def latest_scoring_date() -> dt.date | None:
    dates = query("scoring_dates")
    return None if dates.empty else dates["scoring_date"].iloc[0]


def category_counts(scoring_date: dt.date) -> pd.DataFrame:
    """Members per category in the order low, medium, high, critical, with shares."""
    return queries.category_mix(query("category_counts", scoring_date=scoring_date))


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

@st.cache_resource(show_spinner=False, max_entries=8)
def _mlflow_client(key: tuple, _settings: Settings):
    from healthcare_mlops.runtime.mlflow_setup import mlflow_client

    return mlflow_client(_settings)


@st.cache_data(ttl=KEYED_TTL_SECONDS, show_spinner=False, max_entries=32)
def _registry_cached(key: tuple, fingerprint, _settings: Settings) -> dict:
    from healthcare_mlops.governance.champion import audited_champion
    from healthcare_mlops.runtime.catalog import audit_log

    return read_registry(_mlflow_client(key, _settings), _settings.model_name, audited_champion(audit_log(_settings)))


def registry() -> dict:
    """The registered model: champion and challenger versions and every version's status.

    ``exists`` is False when no model is registered yet (or, locally, no MLflow database).
    """
    from healthcare_mlops.runtime.mlflow_setup import registry_fingerprint

    settings = console_settings()
    fingerprint = registry_fingerprint(settings)
    if fingerprint is None:
        return no_model(settings.model_name)
    return _registry_cached(_key(settings), _freshness(fingerprint), settings)


@st.cache_data(ttl=KEYED_TTL_SECONDS, show_spinner=False, max_entries=8)
def _importance_cached(key: tuple, fingerprint, _settings: Settings) -> pd.DataFrame:
    return read_importance(_mlflow_client(key, _settings), registry())


def global_importance() -> pd.DataFrame:
    """The champion's and challenger's mean |contribution| per input (``registry.read_importance``)."""
    from healthcare_mlops.runtime.mlflow_setup import registry_fingerprint

    settings = console_settings()
    return _importance_cached(_key(settings), _freshness(registry_fingerprint(settings)), settings)


@st.cache_data(ttl=KEYED_TTL_SECONDS, show_spinner=False, max_entries=32)
def _model_card_cached(key: tuple, version: str, fingerprint, _settings: Settings) -> str:
    return read_model_card(_mlflow_client(key, _settings), _settings.model_name, version)


def model_card(version) -> str:
    """The model card (Markdown) stored in the version's description."""
    from healthcare_mlops.runtime.mlflow_setup import registry_fingerprint

    settings = console_settings()
    fingerprint = _freshness(registry_fingerprint(settings))
    return _model_card_cached(_key(settings), str(version), fingerprint, settings)


# -- the bundle's jobs and their runs ------------------------------------------------------------

@st.cache_resource(show_spinner=False)
def _bundle_jobs(target: str) -> list[dict]:
    from healthcare_mlops.emulator.runner import describe_jobs

    return describe_jobs(target=target)


def bundle_jobs() -> list[dict]:
    """Every job of the bundle: key, name, schedule, parameters (with defaults) and tasks."""
    return _bundle_jobs(console_settings().target)


def deployed_job_ids() -> dict[str, int]:
    """Job key -> the deployed job's id, from the app's environment (app.yaml ``valueFrom: job-<key>``)."""
    ids = {job["job_key"]: os.environ.get(job_id_env(job["job_key"]), "") for job in bundle_jobs()}
    return {key: int(value) for key, value in ids.items() if value.isdigit()}


@st.cache_data(ttl=QUERY_TTL_SECONDS, show_spinner=False)
def _workspace_runs_cached(job_ids: tuple) -> pd.DataFrame:
    from healthcare_mlops.runtime.workspace_runs import workspace_runs

    return workspace_runs(workspace_client(), dict(job_ids))


def job_runs() -> pd.DataFrame:
    """Recent job runs, newest first: the local runner's ``job_runs`` table or the workspace's runs."""
    if facts().task_history:
        return query("job_runs")
    return _workspace_runs_cached(tuple(sorted(deployed_job_ids().items())))


def task_runs(run_id: int) -> pd.DataFrame:
    """The task runs of one job run (only the local runner records them)."""
    return query("task_runs", run_id=int(run_id)) if facts().task_history else pd.DataFrame()


# -- before the first visit -----------------------------------------------------------------------

def warm_up() -> None:
    """Build what most pages share before anyone asks (``app/serve.py`` calls this on a background
    thread at start): the SQL engine and the registry client (importing MLflow, opening its store).
    Resources only (``st.cache_resource`` is one per process); no query runs, and the registry client
    only where a registry exists (it would create a local MLflow database)."""
    from healthcare_mlops.runtime.mlflow_setup import registry_fingerprint

    settings = console_settings()
    _engine(settings)
    if registry_fingerprint(settings) is not None:
        _mlflow_client(_key(settings), settings)


# -- real-time scoring ------------------------------------------------------------------------------

@st.cache_resource(show_spinner="Loading the champion model ...", max_entries=2)
def _champion_model(key: tuple, version: int, _settings: Settings):
    import mlflow.pyfunc

    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow

    configure_mlflow(_settings)
    return mlflow.pyfunc.load_model(f"models:/{_settings.model_name}/{version}")


def _load_champion():
    from healthcare_mlops.errors import UserError

    settings = console_settings()
    champion = registry()[CHAMPION]
    if champion is None:
        raise UserError("there is no champion model to score with yet")
    return _champion_model(_key(settings), champion, settings), str(champion)


def scorer():
    """The real-time scorer of this console (see ``composition.realtime_scorer``)."""
    return composition.realtime_scorer(console_settings(), os.environ, _load_champion, workspace_client)


def score_member(record: dict) -> dict:
    """Score one member's model inputs in real time: predicted charges, score, category, interval and
    the explanation (a model version that cannot be explained: the score alone, and the reason why not)."""
    from healthcare_mlops.errors import UserError

    active = scorer()
    try:
        return active.score(record, reasons=True)
    except UserError as exc:
        if "no exact explanation" not in str(exc):
            raise
        return {**active.score(record), "explanation_refused": str(exc)}


def run_hint(job_key: str, params: dict | None = None) -> str:
    """The command (locally) or the job (on Databricks) that produces what a page is missing."""
    return composition.run_hint(console_settings(), job_key, params)
