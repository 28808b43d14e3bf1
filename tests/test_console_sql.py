"""Every console query runs on DuckDB and on Spark SQL with the same text, and both agree.

A Databricks SQL warehouse speaks Spark SQL (ANSI mode on), the laptop speaks DuckDB:
``app.queries`` keeps one SQL text per query, with table names from the table registry. Here
each query runs on DuckDB over the local Delta tables (the console's local engine) and on
local Spark SQL over the same rows registered as temporary views under the same table
names (``system.session.<table>``, ANSI on), and the two results must be equal. A dialect
slip fails here instead of in a workspace.

The tables are synthetic rows that follow the contracts (console_lakehouse.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]

from app import data
from healthcare_mlops.runtime.catalog import audit_log
from healthcare_mlops import tables as T
from healthcare_mlops.governance import audit
from healthcare_mlops.runtime.console_sql import CONSOLE_TABLES, LocalConsoleEngine
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import Settings, resolve_settings


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory):
    """Synthetic contract-shaped tables (predictions, monitoring, job runs) plus a governance log."""
    import datetime as dt

    from console_lakehouse import build_lakehouse

    home = tmp_path_factory.mktemp("console_sql") / "lakehouse"
    settings = build_lakehouse(home, 3000, seed=11, model=False)
    events = []
    for version, action in (("1", audit.VALIDATED), ("1", audit.PROMOTED), ("2", audit.VALIDATED),
                            ("2", audit.REJECTED)):
        event = audit.audit_event(settings.model_name, version, action, "owner@example.com", "approver", "manual",
                                  [], "because", None, True)
        event["event_time"] = dt.datetime(2026, 1, 2, 10, len(events), tzinfo=dt.timezone.utc)
        events.append(event)
    for event in events:
        audit_log(settings).record(event)
    return settings


@pytest.fixture(scope="module")
def spark_settings(spark, lakehouse) -> Settings:
    """The same tables as Spark temporary views; their fully qualified names are system.session.<table>."""
    store = DeltaCatalog(lakehouse)
    for name in CONSOLE_TABLES:
        spark.createDataFrame(store.read_arrow(name)).createOrReplaceTempView(name)
    return Settings(target=lakehouse.target, catalog="system", schema="session", home=lakehouse.home,
                    variables=lakehouse.variables)


def _parameters(settings: Settings) -> list[tuple[str, dict]]:
    """Every query with realistic parameters (the risk filters both open and set)."""
    store = DeltaCatalog(settings)
    predictions = store.read_arrow(T.ML_PATIENT_PREDICTIONS, columns=["scoring_date"]).to_pandas()
    drift = store.read_arrow(T.ML_DRIFT_METRICS, columns=["run_id", "computed_at"]).to_pandas()
    runs = store.read_arrow(T.JOB_RUNS).to_pandas()
    latest_run = str(drift.sort_values("computed_at")["run_id"].iloc[-1])
    job_run = int(runs[runs["parent_run_id"].isna()]["run_id"].iloc[0])
    day = predictions["scoring_date"].max()
    open_filters = data.risk_filters(day)
    narrow = data.risk_filters(day, "northeast", "40-49", "yes")
    non_smokers = data.risk_filters(day, "", "", "no")
    values = {
        "scoring_dates": [{}], "batch_summary": [{"scoring_date": day}], "category_counts": [{"scoring_date": day}],
        "risk_cube": [{"scoring_date": day}],
        "open_alerts": [{}], "alerts": [{"state": "open"}, {"state": "all"}],
        "composite_drift": [{}], "psi_history": [{}], "estimated_mae_history": [{}],
        "drift_run_metrics": [{"run_id": latest_run}],
        "fairness_runs": [{}], "fairness_for_run": [{"run_id": latest_run}], "fairness_history": [{}],
        "fairness_checks_for_run": [{"run_id": latest_run}],
        "audit_log": [{"model_name": settings.model_name}],
        "validations": [{"model_name": settings.model_name, "action": audit.VALIDATED}],
        "champion_since": [{"model_name": settings.model_name}],
        "job_runs": [{}], "running_jobs": [{}], "task_runs": [{"run_id": job_run}],
    }
    for name in ("review_queue", "risk_export"):
        values[name] = [open_filters, narrow, non_smokers]
    missing = set(data.QUERIES) - set(values)
    assert not missing, f"give test parameters for the new queries {sorted(missing)}"
    return [(name, params) for name, cases in values.items() for params in cases]


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Comparable across engines: naive UTC timestamps, plain numbers, rows in a canonical order."""
    frame = frame.copy()
    for column in frame.columns:
        series = frame[column]
        if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(series):
            frame[column] = pd.to_datetime(series, utc=True).dt.tz_localize(None).astype("datetime64[ns]")
        elif pd.api.types.is_bool_dtype(series) or series.dtype == object and series.map(
                lambda v: isinstance(v, (bool, np.bool_))).all() and len(series):
            frame[column] = series.astype(object)
        elif pd.api.types.is_numeric_dtype(series):
            frame[column] = series.astype("float64")
    frame.columns = [c.lower() for c in frame.columns]
    if len(frame):
        frame = frame.sort_values(list(frame.columns), kind="stable", na_position="last").reset_index(drop=True)
    return frame


def test_every_query_runs_on_duckdb_and_spark_and_they_agree(spark, lakehouse, spark_settings):
    previous = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", "true")     # as on a Databricks SQL warehouse
    try:
        checked = set()
        duck = LocalConsoleEngine(lakehouse)
        assert duck.native == set(CONSOLE_TABLES)     # DuckDB's own Parquet reader over every table
        for name, params in _parameters(lakehouse):
            query = data.QUERIES[name]
            bound = query.bind(params)
            on_duckdb = duck.arrow(query.sql(lakehouse), bound).to_pandas(date_as_object=True)
            on_spark = spark.sql(query.sql(spark_settings), args=bound).toPandas()
            assert list(on_duckdb.columns) == list(on_spark.columns), name
            assert len(on_duckdb) == len(on_spark), f"{name} {params}: {len(on_duckdb)} vs {len(on_spark)} rows"
            pd.testing.assert_frame_equal(_normalised(on_duckdb), _normalised(on_spark), check_dtype=False,
                                          check_exact=False, rtol=1e-9, obj=f"{name} {params}")
            checked.add(name)
        assert checked == set(data.QUERIES)
    finally:
        spark.conf.set("spark.sql.ansi.enabled", previous)


def test_the_queries_return_rows_on_the_synthetic_lakehouse(lakehouse):
    """The agreement above is not vacuous: each query returns rows here."""
    duck = LocalConsoleEngine(lakehouse)
    empty = [name for name, params in _parameters(lakehouse)
             if duck.arrow(data.QUERIES[name].sql(lakehouse), data.QUERIES[name].bind(params)).num_rows == 0]
    assert empty == []


def test_native_parquet_views_equal_the_delta_snapshot(lakehouse):
    """The faster native views hold exactly the rows of each table's current Delta version."""
    duck = LocalConsoleEngine(lakehouse)
    store = DeltaCatalog(lakehouse)
    for name in CONSOLE_TABLES:
        expected = store.read_arrow(name).to_pandas()
        shown = duck.arrow(f"SELECT * FROM {lakehouse.tables.fqn(name)}", {}).to_pandas(date_as_object=True)
        assert list(shown.columns) == list(expected.columns), name
        pd.testing.assert_frame_equal(_normalised(shown), _normalised(expected), check_dtype=False, obj=name)


def test_table_names_come_from_the_registry_and_never_name_personal_tables():
    settings = resolve_settings("local", "/nonexistent")
    for query in data.QUERIES.values():
        assert set(query.tables) <= set(CONSOLE_TABLES)
        sql = query.sql(settings)
        named = set(re.findall(r"hc_local\.insurance\.(\w+)", sql))
        assert named == set(query.tables), query.name
        assert "{" not in sql and "}" not in sql
    # the console's local session never holds them (tested below); nothing in app/ or pages/ names them
    sources = [*(REPO / "app").glob("*.py"), *(REPO / "pages").glob("*.py")]
    assert len(sources) >= 14
    for path in sources:
        text = path.read_text()
        for personal in ("silver_patients", "dim_patients", "SILVER_PATIENTS", "DIM_PATIENTS"):
            assert personal not in text, f"{path.name} mentions {personal}"


def test_the_console_engine_cannot_read_the_personal_tables(settings):
    """Even a hand-written query cannot reach silver_patients or dim_patients through the console."""
    import pyarrow as pa

    from healthcare_mlops.errors import UserError

    store = DeltaCatalog(settings)
    store.write(pa.table({"patient_natural_key": ["P1"], "ssn": ["900-01-0001"]}), T.SILVER_PATIENTS)
    store.write(pa.table({"patient_natural_key": ["P1"], "first_name": ["Mary"]}), T.DIM_PATIENTS)
    engine = LocalConsoleEngine(settings)
    for name in (T.SILVER_PATIENTS, T.DIM_PATIENTS):
        with pytest.raises(UserError):
            engine.arrow(f"SELECT * FROM {settings.tables.fqn(name)}", {})
        with pytest.raises(UserError):
            engine.arrow(f"SELECT * FROM __delta_{name}", {})


def test_named_parameters_are_bound_exactly():
    query = data.QUERIES["review_queue"]
    assert set(query.parameters) == {"scoring_date", "region", "age_band", "smoker"}
    with pytest.raises(KeyError, match="needs parameters"):
        query.bind({"scoring_date": "2026-01-01"})
    assert query.bind({**data.risk_filters("d"), "extra": 1}) == data.risk_filters("d")


def test_the_risk_cube_gives_the_same_numbers_as_the_rows(lakehouse):
    """Filters applied to the cube (the Risk page) equal the same filters applied to the rows."""
    duck = LocalConsoleEngine(lakehouse)
    rows = DeltaCatalog(lakehouse).read_arrow(T.ML_PATIENT_PREDICTIONS).to_pandas()
    day = rows["scoring_date"].max()
    rows = rows[rows["scoring_date"] == day]
    query = data.QUERIES["risk_cube"]
    cube = duck.arrow(query.sql(lakehouse), {"scoring_date": day}).to_pandas()
    for region, age_band, smoker in (("", "", ""), ("northeast", "", "yes"), ("", "60+", "no"),
                                     ("southwest", "18-29", "")):
        view = data.risk_view(cube, region, age_band, smoker)
        part = rows
        if region:
            part = part[part["region"] == region]
        if age_band:
            part = part[part["age_band"] == age_band]
        if smoker:
            part = part[part["smoker"] == (smoker == "yes")]
        summary = view["summary"]
        assert summary["members"] == len(part)
        assert summary["review"] == int(part["requires_review"].sum())
        assert summary["critical"] == int((part["risk_category"] == "critical").sum())
        assert summary["mean_predicted"] == pytest.approx(part["predicted_annual_charges"].mean())
        bins = np.minimum(np.floor(part["risk_score"] / data.HISTOGRAM_BIN_WIDTH), 100 // data.HISTOGRAM_BIN_WIDTH - 1)
        assert view["bins"].set_index("bin_index")["members"].to_dict() == bins.astype(int).value_counts().to_dict()
        mix = view["mix"]
        by_region = mix[mix["dimension"] == "region"].set_index(["dimension_value", "risk_category"])["members"]
        assert by_region.to_dict() == part.groupby(["region", "risk_category"]).size().to_dict()
