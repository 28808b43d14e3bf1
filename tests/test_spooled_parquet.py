"""A Delta write of Parquet files DuckDB wrote in the table's layout: the commit adds the files as they are
when the write only adds rows, and rewrites them (as any other write) otherwise."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.runtime.spooled_parquet import SpooledParquet, adopt, adoptable

SCHEMA = pa.schema([("key", pa.string()), ("value", pa.int32()), ("day", pa.date32())])
DAY = dt.date(2025, 3, 1)


def spooled(folder: Path, keys: list[str], select: str | None = None, partition: str = f"day={DAY}") -> SpooledParquet:
    """Rows written by DuckDB as the member load writes them: ``<partition>/data.parquet``, the day left out."""
    target = folder / partition
    target.mkdir(parents=True)
    rows = ", ".join(f"('{key}', {number})" for number, key in enumerate(keys))
    select = select or "SELECT k AS key, CAST(v AS INTEGER) AS value"
    duckdb.sql(f"COPY ({select} FROM (VALUES {rows}) t(k, v)) TO '{target / 'data.parquet'}' (FORMAT parquet)")
    return SpooledParquet(folder, SCHEMA, ("day",))


def test_an_append_commits_the_files_as_they_are(settings, tmp_path):
    catalog = DeltaCatalog(settings)
    first = spooled(tmp_path / "a", ["a", "b", "c"])
    assert catalog.write(first, "spooled", mode="append", partition_by=["day"]) == 3
    assert first.files() == []                                   # moved into the table, not copied
    assert catalog.version("spooled") == 0                       # one commit made the table
    second = spooled(tmp_path / "b", ["d"])
    assert catalog.write(second, "spooled", mode="replace_partition",
                         partition={"day": DAY, "key": "d"}, partition_by=["day"]) == 1
    assert catalog.version("spooled") == 1 and second.files() == []
    table = catalog.read_arrow("spooled").sort_by("key")
    assert table.column("key").to_pylist() == ["a", "b", "c", "d"]
    assert set(table.column("day").to_pylist()) == {DAY}
    files = DeltaTable(str(catalog.path("spooled"))).file_uris()
    assert len(files) == 2 and all(f"day={DAY}" in f for f in files)


def test_a_partition_that_has_rows_is_replaced_by_a_rewrite(settings, tmp_path):
    catalog = DeltaCatalog(settings)
    catalog.write(spooled(tmp_path / "a", ["a", "b"]), "spooled", mode="append", partition_by=["day"])
    again = spooled(tmp_path / "b", ["c"])                       # value 0, as "a" has
    assert catalog.write(again, "spooled", mode="replace_partition", partition={"day": DAY, "value": 0},
                         partition_by=["day"]) == 1
    assert len(again.files()) == 1                               # read and rewritten, left in the spool
    assert sorted(catalog.read_arrow("spooled").column("key").to_pylist()) == ["b", "c"]


@pytest.mark.parametrize("select, partition", [
    ("SELECT k AS key, CAST(v AS BIGINT) AS value", f"day={DAY}"),          # BIGINT, not the table's INTEGER
    ("SELECT k AS key, CAST(v AS INTEGER) AS value, 1 AS extra", f"day={DAY}"),  # a column the table lacks
    ("SELECT CAST(v AS INTEGER) AS value, k AS key", f"day={DAY}"),           # another column order
    (None, "other=1"),                                                        # not the table's partitioning
    (None, f"day={DAY}/deeper"),
])
def test_files_not_in_the_tables_layout_are_not_adopted(tmp_path, select, partition):
    assert not adoptable(spooled(tmp_path, ["a"], select, partition), None, lambda: False)


def test_a_failed_commit_leaves_no_file_behind(settings, tmp_path):
    catalog = DeltaCatalog(settings)
    catalog.write(spooled(tmp_path / "a", ["a"]), "spooled", mode="append", partition_by=["day"])
    before = sorted(catalog.path("spooled").rglob("*.parquet"))
    with pytest.raises(Exception, match="(?i)exist"):           # a new table's commit where a table is
        adopt(spooled(tmp_path / "b", ["b"]), catalog.path("spooled"), None, None)
    assert sorted(catalog.path("spooled").rglob("*.parquet")) == before
    assert catalog.read_arrow("spooled").column("key").to_pylist() == ["a"]
