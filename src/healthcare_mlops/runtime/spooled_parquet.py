"""Parquet files written for one table write, which the Delta commit can add to the table as they are.

Issue 26: the laptop's member load wrote each of its results twice, once by DuckDB to Parquet
and once more by delta-rs, which read that Parquet back, encoded it again and, for 10M rows,
held up to 1.7 GB while doing so (measured: benchmarks/README.md). When DuckDB writes the files
in the table's layout (hive folders ``<column>=<value>/`` of the table's partition columns, the
files without those columns) and the write only adds rows (an append, or a partition replace
where the table has no row of that partition yet), the commit moves the files into the table's
folder and records them: one Delta commit, atomic as any other, with no second encoding.
Anything else (another schema, an overwrite, a partition that has rows) is written as before.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable, Schema
from deltalake.transaction import AddAction, create_table_with_add_actions


@dataclass(frozen=True)
class SpooledParquet:
    """DuckDB's Parquet output for one table: ``folder`` holds hive folders of ``partition_by``."""

    folder: Path
    schema: pa.Schema                  # the table's columns, the partition columns included
    partition_by: tuple[str, ...]

    def files(self) -> list[Path]:
        return sorted(self.folder.rglob("*.parquet")) if self.folder.exists() else []

    def dataset(self) -> ds.Dataset:
        """The rows as a dataset, the partition columns read from the folder names."""
        files = self.files()
        if not files:
            return ds.dataset(self.schema.empty_table())
        partitioning = ds.partitioning(pa.schema([self.schema.field(c) for c in self.partition_by]), flavor="hive") \
            if self.partition_by else None
        return ds.dataset([str(f) for f in files], format="parquet", schema=self.schema, partitioning=partitioning,
                          partition_base_dir=str(self.folder))


def _columns(schema: pa.Schema, leave_out=()) -> list[tuple[str, pa.DataType]]:
    return [(field.name, field.type) for field in schema if field.name not in leave_out]


def _partition_values(spool: SpooledParquet, file: Path) -> dict[str, str] | None:
    """The file's partition values from its folders, or None when they are not exactly the partition columns."""
    folders = file.relative_to(spool.folder).parts[:-1]
    pairs = [folder.split("=", 1) for folder in folders]
    if any(len(pair) != 2 for pair in pairs) or [name for name, _ in pairs] != list(spool.partition_by):
        return None
    return {name: urllib.parse.unquote(value) for name, value in pairs}


def adoptable(spool: SpooledParquet, table: DeltaTable | None, has_rows) -> bool:
    """Whether the commit may add ``spool``'s files as they are: they exist, have exactly the table's
    columns and partitioning, and the write adds rows only (``has_rows()``: the replaced partition
    already holds rows, checked last since it reads the table)."""
    files = spool.files()
    if not files or any(_partition_values(spool, f) is None for f in files):
        return False
    if table is not None and (list(table.metadata().partition_columns) != list(spool.partition_by)
                              or _columns(pa.schema(table.schema().to_arrow())) != _columns(spool.schema)):
        return False
    physical = _columns(spool.schema, spool.partition_by)
    if any(_columns(pq.read_schema(f)) != physical for f in files):
        return False
    return not has_rows()


def adopt(spool: SpooledParquet, path: Path, table: DeltaTable | None, configuration: dict | None) -> None:
    """Move ``spool``'s files into the table at ``path`` and commit them (a new table: created by
    that commit). The moved files are removed again if the commit fails."""
    actions, moved = [], []
    try:
        for file in spool.files():
            values = _partition_values(spool, file)
            relative = Path(*file.relative_to(spool.folder).parts[:-1], f"part-{uuid.uuid4().hex}.parquet")
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            rows = pq.read_metadata(file).num_rows
            shutil.move(file, target)
            moved.append(target)
            actions.append(AddAction(str(relative), target.stat().st_size, values, int(time.time() * 1000), True,
                                     json.dumps({"numRecords": rows})))
        if table is None:
            create_table_with_add_actions(str(path), Schema.from_arrow(spool.schema), actions, mode="error",
                                          partition_by=list(spool.partition_by), configuration=configuration)
        else:
            table.create_write_transaction(actions, mode="append", schema=table.schema(),
                                           partition_by=list(spool.partition_by))
    except BaseException:
        for target in moved:
            target.unlink(missing_ok=True)
        raise
