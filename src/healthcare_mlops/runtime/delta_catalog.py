"""The laptop's table catalog: Delta tables through delta-rs, one folder per ``<catalog>.<schema>.<table>``.

Every write is one Delta commit, so a reader sees the old version or the new one, never
a half-written table, and re-running a job for the same date replaces that date's rows
in a single ``overwrite`` with a predicate. Spark never writes the table (no Delta jars
without Maven), and no row passes through the driver's memory: a Spark DataFrame is
written by Spark as plain Parquet to a spool folder that delta-rs streams into the
commit, and a Spark read is Spark reading the Parquet files of the table's version
(delta-rs lists them; partition values come from the folder names).

Concurrent writers: a commit whose table moved on under it (delta-rs
``CommitFailedError``) is refused as ``WriteConflict``, and ``exclusive`` is an
``flock`` on a lock file beside the table folder, released by the kernel when its
holder exits however it exits, so a killed load never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.catalog_base import (HistoryEntry, TableCatalog, version_unavailable, WriteConflict,
                                              check_filters, check_write, is_spark_frame, partition_predicate,
                                              retention_properties)
from healthcare_mlops.runtime.spooled_parquet import SpooledParquet, adopt, adoptable
from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import PERSONAL_TABLES

UPDATE_ATTEMPTS = 5
STREAM_BATCH_ROWS = 65_536


def arrow_filter(where: list[tuple] | None):
    """The filter triples as one pyarrow dataset expression (None: every row)."""
    expression = None
    for column, op, value in check_filters(where):
        field = ds.field(column)
        term = {"=": lambda: field == value, "!=": lambda: field != value, "<": lambda: field < value,
                "<=": lambda: field <= value, ">": lambda: field > value, ">=": lambda: field >= value,
                "in": lambda: field.isin(list(value)), "is null": field.is_null,
                "is not null": field.is_valid}[op]()
        expression = term if expression is None else expression & term
    return expression


# The identifier tables (tables.PERSONAL_TABLES) and the spool of rows on their way to any table
# are readable by their owner only.
PRIVATE_FOLDER, PRIVATE_FILE = 0o700, 0o600


def private_folder(folder: Path) -> Path:
    """``folder``, created if need be, with mode 0700."""
    folder.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    folder.chmod(PRIVATE_FOLDER)
    return folder


def owner_only(root: Path) -> None:
    """Every folder under ``root`` (and itself) 0700, every file 0600."""
    root.chmod(PRIVATE_FOLDER)
    for folder, folders, files in os.walk(root):
        for name in folders:
            os.chmod(os.path.join(folder, name), PRIVATE_FOLDER)
        for name in files:
            os.chmod(os.path.join(folder, name), PRIVATE_FILE)


class DeltaCatalog(TableCatalog):
    """Reads and writes the target's tables as Delta folders under the local home."""

    def __init__(self, settings: Settings, spark=None):
        super().__init__(settings)
        self._spark = spark

    def path(self, name: str) -> Path:
        return Path(self.settings.table_location(name))

    def exists(self, name: str) -> bool:
        try:
            DeltaTable(str(self.path(name)))
        except TableNotFoundError:
            return False
        return True

    def delta_table(self, name: str, version: int | None = None) -> DeltaTable:
        try:
            return DeltaTable(str(self.path(name)), version=version)
        except DeltaError as exc:
            # An older version whose log entries were cleaned up also reads as "not found".
            if version is not None and self.exists(name):
                raise version_unavailable(self.fqn(name), version, str(exc).splitlines()[0]) from exc
            if isinstance(exc, TableNotFoundError):
                raise UserError(f"table {self.fqn(name)} does not exist yet "
                                f"(looked in {self.path(name)})") from exc
            raise

    def version(self, name: str) -> int | None:
        return self.delta_table(name).version() if self.exists(name) else None

    def history(self, name: str, limit: int = 20) -> list[HistoryEntry]:
        entries = []
        for commit in self.delta_table(name).history(limit):
            millis = commit.get("timestamp")
            when = dt.datetime.fromtimestamp(millis / 1000, dt.timezone.utc) if millis else None
            entries.append(HistoryEntry(int(commit["version"]), when, str(commit.get("operation") or "")))
        return entries

    def read_arrow(self, name: str, where: list[tuple] | None = None, columns: list[str] | None = None,
                   version: int | None = None) -> pa.Table:
        dataset = self.delta_table(name, version).to_pyarrow_dataset()
        try:
            return dataset.to_table(columns=columns, filter=arrow_filter(where))
        except FileNotFoundError as exc:
            if version is None:
                raise
            raise version_unavailable(self.fqn(name), version, f"a data file is gone: {exc}") from exc

    @property
    def spark(self):
        if self._spark is None:
            from healthcare_mlops.runtime.spark_session import get_spark

            self._spark = get_spark(self.settings)
        return self._spark

    def read(self, name: str, where: list[tuple] | None = None, columns: list[str] | None = None,
             version: int | None = None):
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import from_arrow_schema

        from healthcare_mlops.runtime.unity_catalog import spark_condition

        table = self.delta_table(name, version)
        schema = from_arrow_schema(_plain_schema(table.to_pyarrow_dataset().schema), prefer_timestamp_ntz=False)
        files = table.file_uris()
        frame = (self.spark.read.schema(schema).option("basePath", str(self.path(name))).parquet(*files)
                 .select(*schema.fieldNames()) if files else self.spark.createDataFrame([], schema))
        for column, op, value in check_filters(where):
            frame = frame.where(spark_condition(F.col(column), op, value))
        return frame.select(*columns) if columns else frame

    def write(self, data, name: str, mode: str = "overwrite", partition: dict | None = None,
              partition_by: list[str] | None = None) -> int:
        check_write(mode, partition)
        if isinstance(data, SpooledParquet):
            rows = data.dataset()
            if mode == "replace_partition":
                _check_partition_values(rows, partition)
            count = rows.count_rows()          # from the files' footers, before the commit moves them
            if mode in ("append", "replace_partition") and self._adopted(data, name, partition):
                return count
            data = rows
        with self._rows(data) as rows:
            if mode == "replace_partition":
                _check_partition_values(rows, partition)
            try:
                self._commit(rows, name, mode, partition, partition_by)
            except CommitFailedError as exc:
                raise WriteConflict(f"conflict: another writer committed to {self.fqn(name)} while this one "
                                    f"wrote; nothing of this write was committed ({str(exc).splitlines()[0]})") from exc
            return rows.count_rows()

    def _adopted(self, spool: SpooledParquet, name: str, partition: dict | None) -> bool:
        """Whether ``spool``'s files were committed as they are (``runtime/spooled_parquet.py``)."""
        exists = self.exists(name)
        table = self.delta_table(name) if exists else None

        def has_rows() -> bool:
            where = [(column, "=", value) for column, value in (partition or {}).items()]
            return exists and bool(partition) and self.delta_table(name).to_pyarrow_dataset().count_rows(
                filter=arrow_filter(where)) > 0

        if not adoptable(spool, table, has_rows):
            return False
        path = self._prepared(name)
        configuration = None if exists else retention_properties(self.settings.variables) or None
        try:
            adopt(spool, path, table, configuration)
        except CommitFailedError as exc:
            raise WriteConflict(f"conflict: another writer committed to {self.fqn(name)} while this one "
                                f"wrote; nothing of this write was committed ({str(exc).splitlines()[0]})") from exc
        if name in PERSONAL_TABLES:
            owner_only(path)
        return True

    def _prepared(self, name: str) -> Path:
        """The table's folder, its parent made; an identifier table's closed before any file is written."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if name in PERSONAL_TABLES:     # closed before the write, so no new file is ever reachable by others
            path.mkdir(mode=PRIVATE_FOLDER, exist_ok=True)
            path.chmod(PRIVATE_FOLDER)
        return path

    @contextlib.contextmanager
    def _rows(self, data):
        """``data`` as a pyarrow dataset, every column nullable; a Spark frame spooled to Parquet by Spark."""
        if isinstance(data, ds.Dataset):     # already Parquet (the laptop's member load spools its rows)
            yield data
            return
        if not is_spark_frame(data):
            yield ds.dataset(_nullable(data))
            return
        from pyspark.sql.pandas.types import to_arrow_schema

        spool = private_folder(self.settings.home.resolve() / "spool") / uuid.uuid4().hex
        try:
            data.write.parquet(str(spool))
            schema = _nullable_schema(to_arrow_schema(data.schema, timezone="UTC"))
            yield ds.dataset(str(spool), format="parquet", schema=schema)
        finally:
            shutil.rmtree(spool, ignore_errors=True)

    def _commit(self, rows: ds.Dataset, name: str, mode: str, partition: dict | None,
                partition_by: list[str] | None) -> None:
        path = self._prepared(name)
        # A new table gets the retention that keeps the versions a lineage records readable.
        exists = self.exists(name)
        configuration = None if exists else retention_properties(self.settings.variables) or None
        # A small read-ahead: the commit streams, it never holds more than a few batches.
        stream = rows.scanner(batch_size=STREAM_BATCH_ROWS, batch_readahead=2, fragment_readahead=1).to_reader()
        if mode == "replace_partition":
            # merge: a contract that gains columns (e.g. the explanations) writes into a table
            # made before it; the other partitions read the new columns as null
            write_deltalake(str(path), stream, mode="overwrite",
                            predicate=partition_predicate(partition) if exists else None,
                            partition_by=partition_by or list(partition), schema_mode="merge",
                            configuration=configuration)
        elif mode == "append":
            # a table keeps its own partitioning (dim_patients of a home made before it was partitioned)
            kept = list(self.delta_table(name).metadata().partition_columns) if exists else partition_by
            write_deltalake(str(path), stream, mode="append", schema_mode="merge", partition_by=kept or None,
                            configuration=configuration)
        else:
            write_deltalake(str(path), stream, mode="overwrite", schema_mode="overwrite",
                            partition_by=partition_by, configuration=configuration)
        if name in PERSONAL_TABLES:
            owner_only(path)

    @contextlib.contextmanager
    def exclusive(self, name: str, purpose: str):
        lock = self.path(name).parent / f".{name}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(os.open(lock, os.O_RDWR | os.O_CREAT, 0o600), "r+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = handle.read().strip() or "another process"
                raise WriteConflict(f"conflict: {self.fqn(name)} is being written by {holder}; "
                                    "this run wrote nothing, run it again when that one has finished") from None
            handle.truncate(0)
            handle.write(f"pid {os.getpid()} ({purpose}, since "
                         f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC)")
            handle.flush()
            yield

    def update(self, name: str, values: dict, where: list[tuple]) -> int:
        """Rewrite the partitions holding matching rows, the rows changed, in one commit.

        Not ``DeltaTable.update``: delta-rs 1.x rewrites the file it updates with Arrow
        ``string_view`` columns, and a filter on a string column then fails in every reader
        of the table's pyarrow dataset (DuckDB, the console). The table version read is
        checked before the commit and the update retried when another writer came first.
        """
        for _ in range(UPDATE_ATTEMPTS):
            table = self.delta_table(name)
            version = table.version()
            arrow = _plain_strings(table.to_pyarrow_table())
            matched = arrow.append_column("__row", pa.array(np.arange(arrow.num_rows)))
            rows = matched.filter(arrow_filter(where)).column("__row").to_numpy() \
                if where else np.arange(arrow.num_rows)
            if len(rows) == 0:
                return 0
            mask = np.zeros(arrow.num_rows, dtype=bool)
            mask[rows] = True
            partitions = list(table.metadata().partition_columns)
            keys = _touched_partitions(arrow, mask, partitions)
            changed = _with_values(arrow, pa.array(mask), values)
            if keys:
                changed = changed.filter(_partitions_expression(keys))
            if self.delta_table(name).version() != version:
                continue
            predicate = " OR ".join(f"({partition_predicate(key)})" for key in keys) or None
            write_deltalake(str(self.path(name)), changed, mode="overwrite", predicate=predicate,
                            partition_by=partitions or None)
            if name in PERSONAL_TABLES:
                owner_only(self.path(name))
            return int(mask.sum())
        raise UserError(f"{self.fqn(name)} kept changing while updating it; try again")


def _with_values(table: pa.Table, mask: pa.Array, values: dict) -> pa.Table:
    """``table`` with ``values`` set where ``mask`` is true."""
    for column, value in values.items():
        index = table.schema.get_field_index(column)
        if index < 0:
            raise ValueError(f"no column '{column}' to update")
        kind = table.schema.field(index).type
        replacement = pa.scalar(value, type=kind)
        table = table.set_column(index, table.schema.field(index),
                                 pc.if_else(mask, replacement, table.column(index)))
    return table


def _touched_partitions(table: pa.Table, mask: np.ndarray, partitions: list[str]) -> list[dict]:
    """The partition values of the rows under ``mask`` (empty: the table is not partitioned)."""
    if not partitions:
        return []
    return table.filter(pa.array(mask)).select(partitions).group_by(partitions).aggregate([]).to_pylist()


def _partitions_expression(keys: list[dict]):
    """A dataset expression selecting the rows of these partitions."""
    scope = None
    for key in keys:
        term = None
        for column, value in key.items():
            condition = ds.field(column) == value
            term = condition if term is None else term & condition
        scope = term if scope is None else scope | term
    return scope


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """``string_view`` fields as plain strings (what every reader of the table expects)."""
    return pa.schema([f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in schema])


def _plain_strings(table: pa.Table) -> pa.Table:
    """``table`` with ``string_view`` columns cast to plain strings."""
    schema = _plain_schema(table.schema)
    return table if schema.equals(table.schema) else table.cast(schema)


def _nullable_schema(schema: pa.Schema) -> pa.Schema:
    """Every field nullable, as Delta on Databricks stores a DataFrame's columns.

    Spark marks a literal or a key column non-nullable; a table created with that schema
    would refuse every later null (for example a quarantine row without a source row).
    """
    return pa.schema([field.with_nullable(True) for field in schema], metadata=schema.metadata)


def _nullable(data: pa.Table) -> pa.Table:
    """``data`` with every column nullable."""
    schema = _nullable_schema(data.schema)
    return data if schema.equals(data.schema) else data.cast(schema)


def _check_partition_values(rows: ds.Dataset, partition: dict) -> None:
    """Refuse a partition replace whose rows fall outside the partition it replaces."""
    for column, value in partition.items():
        if column not in rows.schema.names:
            raise ValueError(f"partition column '{column}' is not in the data")
        field = ds.field(column)
        outside = rows.head(1, columns=[column], filter=(field != value) | field.is_null())
        if outside.num_rows:
            raise ValueError(f"rows with {column}={outside.column(0)[0].as_py()!r} cannot replace partition "
                             f"{column}={value!r}")
