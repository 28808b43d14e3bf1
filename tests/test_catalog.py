"""The table catalog's contract, run on both implementations.

``DeltaCatalog`` (the laptop) runs on real Delta tables in a temporary home.
``UnityCatalog`` (Databricks) runs on local Spark with the three-level names mapped into
Spark's own catalog and Parquet tables: the closest honest stand-in here, since Delta's
jars cannot be fetched. What only Delta can do (``replaceWhere``, ``DESCRIBE HISTORY``,
``UPDATE``) is tested on the UC side by the statements and options it builds, and on the
local side by running it.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pyarrow as pa
import pytest

from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.catalog import table_catalog
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.runtime.unity_catalog import (UnityCatalog, sql_condition, update_statement,
                                                    write_options)
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tables import ML_MODEL_ALERTS, SILVER_PATIENTS

D1, D2, D3 = dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)
TABLE = SILVER_PATIENTS


def rows(day: dt.date, keys: list[str], source: str = "generator", bmi=1.0) -> pa.Table:
    return pa.table({
        "patient_natural_key": pa.array(keys, pa.string()),
        "bmi": pa.array([bmi] * len(keys), pa.float64()),
        "as_of_date": pa.array([day] * len(keys), pa.date32()),
        "source": pa.array([source] * len(keys), pa.string()),
    })


def content(table: pa.Table) -> list[tuple]:
    columns = sorted(table.column_names)
    return sorted(zip(*[table.column(c).to_pylist() for c in columns]))


@pytest.fixture(params=["delta", pytest.param("unity", marks=pytest.mark.slow)])   # unity: on Spark
def catalog(request, settings):
    if request.param == "delta":
        yield DeltaCatalog(settings)
        return
    spark = request.getfixturevalue("spark")
    database = f"{settings.catalog}_{settings.schema}_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE DATABASE {database} LOCATION '{settings.home.resolve() / 'spark' / database}'")
    yield UnityCatalog(settings, spark, table_format="parquet",
                       name_for=lambda name: f"spark_catalog.{database}.{name}")
    spark.sql(f"DROP DATABASE {database} CASCADE")


# -- the contract both implementations keep ------------------------------------------------------

def test_a_missing_table(catalog):
    assert not catalog.exists(TABLE)
    with pytest.raises(UserError, match="does not exist"):
        catalog.read(TABLE)


def test_overwrite_then_read_round_trips_and_counts(catalog):
    assert catalog.write(rows(D1, ["a", "b", "c"]), TABLE) == 3
    assert catalog.exists(TABLE)
    assert content(catalog.read_arrow(TABLE)) == content(rows(D1, ["a", "b", "c"]))
    assert catalog.write(rows(D2, ["x"]), TABLE, mode="overwrite") == 1
    assert content(catalog.read_arrow(TABLE)) == content(rows(D2, ["x"]))


def test_append_adds_rows(catalog):
    catalog.write(rows(D1, ["a", "b"]), TABLE, mode="append")
    assert catalog.write(rows(D2, ["c"]), TABLE, mode="append") == 1
    assert sorted(catalog.read_arrow(TABLE).column("patient_natural_key").to_pylist()) == ["a", "b", "c"]


@pytest.mark.slow
def test_filters_and_columns_are_one_language(catalog):
    catalog.write(pa.concat_tables([rows(D1, ["a", "b"]), rows(D2, ["c"], source="file.csv"),
                                    rows(D3, ["d"], bmi=None)]), TABLE)

    def keys(where, columns=None):
        return sorted(catalog.read_arrow(TABLE, where, columns).column("patient_natural_key").to_pylist())

    assert keys([("as_of_date", "=", D1)]) == ["a", "b"]
    assert keys([("as_of_date", ">=", D2), ("as_of_date", "<", D3)]) == ["c"]
    assert keys([("source", "!=", "generator")]) == ["c"]
    assert keys([("patient_natural_key", "in", ["a", "d", "zz"])]) == ["a", "d"]
    assert keys([("bmi", "is null", None)]) == ["d"]
    assert keys([("bmi", "is not null", None), ("as_of_date", "<=", D2)]) == ["a", "b", "c"]
    assert catalog.read_arrow(TABLE, [("as_of_date", "=", D1)], ["patient_natural_key"]).column_names == \
        ["patient_natural_key"]
    assert catalog.distinct_values(TABLE, "as_of_date") == [D1, D2, D3]
    assert catalog.distinct_values(TABLE, "as_of_date", [("as_of_date", "<", D3)], not_null="bmi") == [D1, D2]
    frame = catalog.read(TABLE, [("source", "=", "generator")], ["patient_natural_key", "as_of_date"])
    assert sorted(r["patient_natural_key"] for r in frame.collect()) == ["a", "b", "d"]
    with pytest.raises(ValueError, match="a filter is"):
        catalog.read_arrow(TABLE, [("bmi", "~", 1)])


def test_spark_frames_and_arrow_tables_write_alike(catalog, spark):
    frame = spark.createDataFrame(rows(D1, ["a", "b"]).to_pandas())
    assert catalog.write(frame, TABLE) == 2
    assert catalog.write(rows(D1, ["c"]), TABLE, mode="append") == 1
    assert catalog.read(TABLE).count() == 3


def test_append_rows_keeps_the_schema(catalog):
    schema = pa.schema([("patient_natural_key", pa.string()), ("bmi", pa.float64())])
    assert catalog.append_rows(TABLE, [], schema) == 0
    assert catalog.append_rows(TABLE, [{"patient_natural_key": "a", "bmi": None}], schema) == 1
    assert catalog.read_arrow(TABLE).to_pylist() == [{"patient_natural_key": "a", "bmi": None}]


def test_bad_write_modes_are_refused(catalog):
    with pytest.raises(ValueError, match="mode must be one of"):
        catalog.write(rows(D1, ["a"]), TABLE, mode="upsert")
    with pytest.raises(ValueError, match="needs the partition"):
        catalog.write(rows(D1, ["a"]), TABLE, mode="replace_partition")
    assert not catalog.exists(TABLE)


# -- what only Delta does: run locally, built on the UC side ----------------------------------------

def test_replace_partition_and_history_locally(settings):
    catalog = DeltaCatalog(settings)
    for day, keys in ((D1, ["a"]), (D2, ["b", "c"])):
        catalog.write(rows(day, keys), TABLE, mode="replace_partition", partition={"as_of_date": day},
                      partition_by=["as_of_date"])
    assert catalog.write(rows(D2, ["z"]), TABLE, mode="replace_partition", partition={"as_of_date": D2},
                         partition_by=["as_of_date"]) == 1
    assert sorted(catalog.read_arrow(TABLE).column("patient_natural_key").to_pylist()) == ["a", "z"]
    assert catalog.version(TABLE) == 2
    history = catalog.history(TABLE)
    assert [h.version for h in history] == [2, 1, 0] and all(h.timestamp for h in history)
    # time travel: the table as a version recorded in a model's lineage saw it
    assert sorted(catalog.read_arrow(TABLE, version=1).column("patient_natural_key").to_pylist()) == ["a", "b", "c"]
    assert catalog.read_arrow(TABLE, [("as_of_date", "=", D2)], version=2).num_rows == 1


def test_a_conditional_update_changes_a_row_once(settings):
    catalog = DeltaCatalog(settings)
    alerts = pa.table({"alert_id": ["a1", "a2", "a3"], "acknowledged_by": pa.array([None, None, "x"], pa.string()),
                       "window_end": [D1, D1, D2]})
    catalog.write(alerts, ML_MODEL_ALERTS, partition_by=["window_end"])
    guard = [("alert_id", "=", "a1"), ("acknowledged_by", "is null", None)]
    assert catalog.update(ML_MODEL_ALERTS, {"acknowledged_by": "ops"}, guard) == 1
    assert catalog.update(ML_MODEL_ALERTS, {"acknowledged_by": "late"}, guard) == 0     # the second one loses
    after = {r["alert_id"]: r["acknowledged_by"] for r in catalog.read_arrow(ML_MODEL_ALERTS).to_pylist()}
    assert after == {"a1": "ops", "a2": None, "a3": "x"}
    assert catalog.version(ML_MODEL_ALERTS) == 1                 # one commit for the one change
    # every other partition and every string column stays readable by pyarrow filters (no string_view)
    assert catalog.read_arrow(ML_MODEL_ALERTS, [("acknowledged_by", "=", "x")]).num_rows == 1


def test_unity_catalog_builds_delta_writes_and_sql_updates():
    assert write_options("replace_partition", {"scoring_date": D1, "source": "o'brien.csv"}) == {
        "replaceWhere": "scoring_date = '2025-01-01' AND source = 'o''brien.csv'", "mergeSchema": "true"}
    assert write_options("append", None) == {"mergeSchema": "true"}
    assert write_options("overwrite", None) == {"overwriteSchema": "true"}
    statement, params = update_statement("c.s.ml_model_alerts", {"acknowledged_by": "ops"},
                                         [("alert_id", "=", "a1"), ("acknowledged_at", "is null", None)])
    assert statement == ("UPDATE c.s.ml_model_alerts SET acknowledged_by = :set_acknowledged_by "
                         "WHERE alert_id = :w0 AND acknowledged_at IS NULL")
    assert params == {"w0": "a1", "set_acknowledged_by": "ops"}
    condition, params = sql_condition([("alert_id", "in", ["a", "b"]), ("n", "!=", 3)])
    assert condition == "alert_id IN (:w0_0, :w0_1) AND n <> :w1" and params == {"w0_0": "a", "w0_1": "b", "w1": 3}
    assert sql_condition([]) == ("TRUE", {})


def test_unity_catalog_without_spark_reads_and_writes_through_the_warehouse():
    """The console on Databricks has no Spark: reads, appends and updates are parameterised SQL."""
    class Warehouse:
        def __init__(self):
            self.sent = []

        def arrow(self, statement, params):
            self.sent.append((statement, params))
            return pa.table({"alert_id": ["a1"]})

        def query(self, statement, params=None):
            import pandas as pd

            self.sent.append((statement, params))
            return pd.DataFrame({"num_affected_rows": [1]})

        def execute(self, statement, params=None):
            self.sent.append((statement, params))

    warehouse = Warehouse()
    prod = resolve_settings("prod")
    catalog = UnityCatalog(prod, spark=False, sql=warehouse)
    catalog.read_arrow(ML_MODEL_ALERTS, [("alert_id", "=", "a1")], ["alert_id"])
    catalog.read_arrow(ML_MODEL_ALERTS, version=3)
    catalog.append_rows(ML_MODEL_ALERTS, [{"alert_id": "a2"}], pa.schema([("alert_id", pa.string())]))
    assert catalog.update(ML_MODEL_ALERTS, {"retrain_run_id": "9"}, [("alert_id", "in", ["a1"])]) == 1
    with pytest.raises(UserError, match="needs Spark"):
        catalog.write(rows(D1, ["a"]), TABLE, mode="overwrite")
    fqn = prod.tables.fqn(ML_MODEL_ALERTS)
    assert warehouse.sent == [
        (f"SELECT alert_id FROM {fqn} WHERE alert_id = :w0", {"w0": "a1"}),
        (f"SELECT * FROM {fqn} VERSION AS OF 3 WHERE TRUE", {}),
        (f"INSERT INTO {fqn} (alert_id) VALUES (:alert_id)", {"alert_id": "a2"}),
        (f"UPDATE {fqn} SET retrain_run_id = :set_retrain_run_id WHERE alert_id IN (:w0_0)",
         {"w0_0": "a1", "set_retrain_run_id": "9"}),
    ]


def test_the_target_decides_the_implementation(settings):
    assert isinstance(table_catalog(settings), DeltaCatalog)
    assert isinstance(table_catalog(resolve_settings("prod")), UnityCatalog)
