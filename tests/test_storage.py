"""The local table store (delta-rs) and the local SQL read path (DuckDB over it).

Every write mode is exercised on real Delta tables in a temporary home: what the table
holds afterwards, that each write is exactly one Delta commit, and that a refused write
leaves the table as it was.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.sql_engine import LocalSqlEngine, sql_engine
from healthcare_mlops.runtime.catalog import partition_predicate
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, JOB_RUNS, SILVER_PATIENTS

D1, D2, D3 = dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)
TABLE = SILVER_PATIENTS


def rows(day: dt.date, keys: list[str], source: str = "generator", value: float = 1.0) -> pa.Table:
    return pa.table({
        "patient_natural_key": pa.array(keys, pa.string()),
        "bmi": pa.array([value] * len(keys), pa.float64()),
        "as_of_date": pa.array([day] * len(keys), pa.date32()),
        "source": pa.array([source] * len(keys), pa.string()),
    })


def content(store: DeltaCatalog, name: str = TABLE) -> list[tuple]:
    table = store.read_arrow(name)
    return sorted(zip(*[table.column(c).to_pylist() for c in table.column_names]))


def commits(store: DeltaCatalog, name: str = TABLE) -> int:
    return len(store.delta_table(name).history())


@pytest.fixture
def store(settings) -> DeltaCatalog:
    return DeltaCatalog(settings)


def test_missing_table(store, settings):
    assert not store.exists(TABLE)
    assert store.version(TABLE) is None
    with pytest.raises(UserError, match=rf"{settings.catalog}\.{settings.schema}\.{TABLE} does not exist"):
        store.read_arrow(TABLE)


def test_overwrite_is_one_commit_and_keeps_history(store):
    assert store.write(rows(D1, ["a", "b", "c"]), TABLE) == 3      # the rows written
    assert store.path(TABLE).is_dir() and store.version(TABLE) == 0
    replacement = pa.table({"patient_natural_key": ["x"], "other": [7]})   # another schema
    assert store.write(replacement, TABLE, mode="overwrite") == 1
    assert store.version(TABLE) == 1
    assert commits(store) == 2
    assert store.read_arrow(TABLE).to_pylist() == [{"patient_natural_key": "x", "other": 7}]
    # Time travel: version 0 is still the first write, untouched.
    first = DeltaTable(str(store.path(TABLE)), version=0).to_pyarrow_table()
    assert sorted(first.column("patient_natural_key").to_pylist()) == ["a", "b", "c"]


def test_append_adds_rows_and_merges_new_columns(store):
    store.write(rows(D1, ["a", "b"]), TABLE, mode="append")
    extra = rows(D2, ["c"]).append_column("note", pa.array(["new"], pa.string()))
    assert store.write(extra, TABLE, mode="append") == 1
    assert store.version(TABLE) == 1
    table = store.read_arrow(TABLE)
    assert table.num_rows == 3
    notes = dict(zip(table.column("patient_natural_key").to_pylist(), table.column("note").to_pylist()))
    assert notes == {"a": None, "b": None, "c": "new"}
    assert commits(store) == 2


def test_replace_partition_leaves_other_partitions(store):
    store.write(rows(D1, ["a", "b"]), TABLE, mode="replace_partition",
                      partition={"as_of_date": D1}, partition_by=["as_of_date"])
    store.write(rows(D2, ["a", "b", "c"]), TABLE, mode="replace_partition",
                      partition={"as_of_date": D2}, partition_by=["as_of_date"])
    store.write(rows(D3, ["a"]), TABLE, mode="replace_partition",
                      partition={"as_of_date": D3}, partition_by=["as_of_date"])
    before = content(store)
    written = store.write(rows(D2, ["z"], value=2.0), TABLE, mode="replace_partition",
                          partition={"as_of_date": D2}, partition_by=["as_of_date"])
    assert written == 1 and store.version(TABLE) == 3 and commits(store) == 4
    after = content(store)
    assert [r for r in after if r[2] != D2] == [r for r in before if r[2] != D2]
    assert [r for r in after if r[2] == D2] == [("z", 2.0, D2, "generator")]
    # The table is partitioned by date on disk.
    assert {p.name for p in store.path(TABLE).iterdir() if p.is_dir() and "=" in p.name} == {
        f"as_of_date={d.isoformat()}" for d in (D1, D2, D3)}


def test_replace_partition_on_two_columns_keeps_the_other_source(store):
    store.write(rows(D1, ["a", "b"], source="generator"), TABLE, mode="replace_partition",
                      partition={"as_of_date": D1, "source": "generator"}, partition_by=["as_of_date"])
    store.write(rows(D1, ["ING-1"], source="file.csv"), TABLE, mode="replace_partition",
                      partition={"as_of_date": D1, "source": "file.csv"}, partition_by=["as_of_date"])
    store.write(rows(D1, ["c"], source="generator"), TABLE, mode="replace_partition",
                      partition={"as_of_date": D1, "source": "generator"}, partition_by=["as_of_date"])
    assert [(r[0], r[3]) for r in content(store)] == [("ING-1", "file.csv"), ("c", "generator")]


def test_replace_partition_refuses_rows_outside_the_partition(store):
    store.write(rows(D1, ["a"]), TABLE, mode="replace_partition",
                      partition={"as_of_date": D1}, partition_by=["as_of_date"])
    mixed = pa.concat_tables([rows(D1, ["b"]), rows(D2, ["c"])])
    with pytest.raises(ValueError, match=r"as_of_date=datetime.date\(2025, 2, 1\).*cannot replace"):
        store.write(mixed, TABLE, mode="replace_partition",
                          partition={"as_of_date": D1}, partition_by=["as_of_date"])
    with pytest.raises(ValueError, match="partition column 'scoring_date' is not in the data"):
        store.write(rows(D1, ["b"]), TABLE, mode="replace_partition",
                          partition={"scoring_date": D1})
    with pytest.raises(ValueError, match="needs the partition"):
        store.write(rows(D1, ["b"]), TABLE, mode="replace_partition")
    with pytest.raises(ValueError, match="mode must be one of"):
        store.write(rows(D1, ["b"]), TABLE, mode="upsert")
    # Nothing was committed by the refused writes.
    assert store.version(TABLE) == 0
    assert content(store) == [("a", 1.0, D1, "generator")]


def test_replace_partition_of_an_empty_partition_set(store):
    """Replacing a partition with no rows empties it (a load that delivered nothing)."""
    store.write(rows(D1, ["a"]), TABLE, mode="replace_partition",
                      partition={"as_of_date": D1}, partition_by=["as_of_date"])
    store.write(rows(D2, ["b"]), TABLE, mode="replace_partition",
                      partition={"as_of_date": D2}, partition_by=["as_of_date"])
    store.write(rows(D1, []), TABLE, mode="replace_partition",
                      partition={"as_of_date": D1}, partition_by=["as_of_date"])
    assert [r[0] for r in content(store)] == ["b"]
    assert store.version(TABLE) == 2


def test_non_nullable_first_write_accepts_nulls_later(store):
    """Spark marks literal columns non-nullable; the table must still take nulls later."""
    strict = pa.schema([pa.field("stage", pa.string(), nullable=False),
                        pa.field("source_row", pa.int64(), nullable=False),
                        pa.field("as_of_date", pa.date32(), nullable=False)])
    first = pa.table({"stage": ["generate"], "source_row": [1], "as_of_date": [D1]}, schema=strict)
    store.write(first, DATA_QUALITY_QUARANTINE, mode="replace_partition",
                      partition={"as_of_date": D1}, partition_by=["as_of_date"])
    later = pa.table({"stage": ["ingest"], "source_row": pa.array([None], pa.int64()), "as_of_date": [D2]})
    store.write(later, DATA_QUALITY_QUARANTINE, mode="replace_partition",
                      partition={"as_of_date": D2}, partition_by=["as_of_date"])
    assert content(store, DATA_QUALITY_QUARANTINE) == [("generate", 1, D1), ("ingest", None, D2)]


def test_partition_predicate_quotes_values():
    assert partition_predicate({"as_of_date": D1, "source": "o'brien.csv", "n": 3}) == \
        "as_of_date = '2025-01-01' AND source = 'o''brien.csv' AND n = 3"


def test_sql_engine_resolves_qualified_and_unqualified_names(store, settings):
    store.write(rows(D1, ["a", "b"]), TABLE)
    engine = sql_engine(settings, identifiers=True)      # TABLE is silver_patients
    assert isinstance(engine, LocalSqlEngine)
    fqn = settings.tables.fqn(TABLE)
    assert engine.query(f"select count(*) as n from {TABLE}")["n"].tolist() == [2]
    assert engine.query(f"select count(*) as n from {fqn}")["n"].tolist() == [2]
    assert engine.query(f"select patient_natural_key as k from {TABLE} where bmi = :bmi order by 1",
                        {"bmi": 1.0})["k"].tolist() == ["a", "b"]
    # Dates come back as dates (the CLI prints them as YYYY-MM-DD), not as timestamps.
    assert engine.query(f"select distinct as_of_date from {TABLE}")["as_of_date"].tolist() == [D1]
    # A new connection sees the latest committed version.
    store.write(rows(D1, ["c"]), TABLE, mode="append")
    assert engine.query(f"select count(*) as n from {TABLE}")["n"].tolist() == [3]
    # Tables not written yet are simply absent; a failing query is a UserError with one line.
    with pytest.raises(UserError, match=rf"^query failed: .*{JOB_RUNS}") as failure:
        engine.query(f"select * from {JOB_RUNS}")
    assert "\n" not in str(failure.value)


def test_a_databricks_write_reports_the_rows_its_delta_commit_wrote():
    """On Databricks the count comes from the commit, so the frame (e.g. scoring) is evaluated once."""
    from healthcare_mlops.runtime.unity_catalog import rows_written

    def commit(tag, operation, metrics):      # a DESCRIBE HISTORY row, newest first
        return {"userMetadata": tag, "operation": operation, "operationMetrics": metrics}

    history = [commit(None, "WRITE", {"numOutputRows": "7"}),                 # another job, after ours
               commit("ours", "WRITE", {"numFiles": "3", "numOutputRows": "1200", "numOutputBytes": "90"}),
               commit("older", "CREATE OR REPLACE TABLE AS SELECT", {"numOutputRows": "0"})]
    assert rows_written(history, "ours") == 1200
    assert rows_written(history, "older") == 0
    with pytest.raises(RuntimeError, match="no commit tagged"):
        rows_written(history, "missing")
    with pytest.raises(RuntimeError, match="numOutputRows"):
        rows_written([commit("ours", "OPTIMIZE", {"numRemovedFiles": "2"})], "ours")
