"""Local Delta tables through delta-rs: one folder per ``<catalog>.<schema>.<table>``.

Every write is one Delta commit, so a reader sees the old version or the new one,
never a half-written table, and re-running a job for the same date replaces that
date's rows in a single atomic ``overwrite`` with a predicate.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import Settings

WRITE_MODES = ("overwrite", "append", "replace_partition")


def _sql_literal(value) -> str:
    """A literal for a delta-rs predicate; dates and strings are quoted."""
    if isinstance(value, (dt.date, dt.datetime)):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def partition_predicate(partition: dict) -> str:
    """``{"scoring_date": date(2026,1,1)}`` -> ``scoring_date = '2026-01-01'``."""
    return " AND ".join(f"{column} = {_sql_literal(value)}" for column, value in partition.items())


class LocalTableStore:
    """Reads and writes the target's tables as Delta folders under the local home."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def path(self, name: str) -> Path:
        return Path(self.settings.table_location(name))

    def exists(self, name: str) -> bool:
        try:
            DeltaTable(str(self.path(name)))
        except TableNotFoundError:
            return False
        return True

    def delta_table(self, name: str) -> DeltaTable:
        try:
            return DeltaTable(str(self.path(name)))
        except TableNotFoundError as exc:
            raise UserError(f"table {self.settings.tables.fqn(name)} does not exist yet "
                            f"(looked in {self.path(name)})") from exc

    def read_arrow(self, name: str, columns: list[str] | None = None) -> pa.Table:
        return self.delta_table(name).to_pyarrow_table(columns=columns)

    def version(self, name: str) -> int | None:
        """The table's current Delta version, or None when it does not exist."""
        return self.delta_table(name).version() if self.exists(name) else None

    def write_arrow(self, data: pa.Table, name: str, mode: str = "overwrite",
                    partition: dict | None = None, partition_by: list[str] | None = None) -> int:
        """Write ``data`` as one Delta commit and return the new table version.

        ``replace_partition`` swaps the rows matching ``partition`` (for example one
        ``scoring_date``) for ``data`` and leaves every other partition untouched.
        """
        if mode not in WRITE_MODES:
            raise ValueError(f"mode must be one of {WRITE_MODES}, not {mode!r}")
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _nullable(data)
        if mode == "replace_partition":
            if not partition:
                raise ValueError("replace_partition needs the partition to replace")
            _check_partition_values(data, partition)
            write_deltalake(str(path), data, mode="overwrite",
                            predicate=partition_predicate(partition) if self.exists(name) else None,
                            partition_by=partition_by or list(partition))
        elif mode == "append":
            write_deltalake(str(path), data, mode="append", schema_mode="merge",
                            partition_by=partition_by)
        else:
            write_deltalake(str(path), data, mode="overwrite", schema_mode="overwrite",
                            partition_by=partition_by)
        return DeltaTable(str(path)).version()


def _nullable(data: pa.Table) -> pa.Table:
    """``data`` with every column nullable, as Delta on Databricks stores a DataFrame's columns.

    Spark marks a literal or a key column non-nullable; a table created with that schema
    would refuse every later null (for example a quarantine row without a source row).
    """
    schema = pa.schema([field.with_nullable(True) for field in data.schema], metadata=data.schema.metadata)
    return data if schema.equals(data.schema) else data.cast(schema)


def _check_partition_values(data: pa.Table, partition: dict) -> None:
    """Refuse a partition replace whose rows fall outside the partition it replaces."""
    for column, value in partition.items():
        if column not in data.column_names:
            raise ValueError(f"partition column '{column}' is not in the data")
        outside = [v for v in data.column(column).unique().to_pylist() if v != value]
        if outside:
            raise ValueError(f"rows with {column}={outside[0]!r} cannot replace partition "
                             f"{column}={value!r}")
