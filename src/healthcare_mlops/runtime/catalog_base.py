"""The table catalog's interface: every read and write of the product's tables goes through it.

Kedro's DataCatalog is the model: the pipeline's nodes (features, training, scoring,
monitoring maths) take and return frames and never know where a table lives; the
catalog is the I/O edge. Two implementations, chosen once from the settings by
``table_catalog`` (runtime/catalog.py):

- ``DeltaCatalog`` (runtime/delta_catalog.py): the laptop. Delta tables written and
  read with delta-rs, one folder per ``<catalog>.<schema>.<table>`` under the home.
- ``UnityCatalog`` (runtime/unity_catalog.py): Databricks. Unity Catalog Delta tables
  through Spark (``saveAsTable`` / ``replaceWhere`` / ``UPDATE``), or through the SQL
  warehouse for the console, which has no Spark.

Both pass the same contract tests (tests/test_catalog.py). Filters are one small
language for both: a list of ``(column, op, value)`` with op in ``= != < <= > >= in``
and ``is null`` / ``is not null`` (value ignored).

Every write is one atomic commit: ``overwrite`` (the whole table), ``append``, and
``replace_partition`` (the rows matching ``partition`` swapped for the data, other
rows untouched), so a reader sees the old table or the new one and a rerun of a date
replaces that date. A change of several commits (a member load) holds ``exclusive`` for
its duration; two writers never both win: the other gets ``WriteConflict``.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pyarrow as pa

from healthcare_mlops.errors import UserError, VersionUnavailable
from healthcare_mlops.settings import Settings

WRITE_MODES = ("overwrite", "append", "replace_partition")
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
FILTER_OPS = (*COMPARISONS, "in", "is null", "is not null")


# The Delta table properties that keep old versions readable by time travel (lineage), each
# set from the bundle variable ``table_retention_days`` when the catalog creates a table.
LOG_RETENTION, FILE_RETENTION = "delta.logRetentionDuration", "delta.deletedFileRetentionDuration"
RETENTION_VARIABLE = "table_retention_days"


class WriteConflict(UserError):
    """Another writer holds or changed the table first; this write committed nothing."""


def version_unavailable(table: str, version: int, cause: str) -> VersionUnavailable:
    """The error for a table version that can no longer be read, saying what keeps versions readable."""
    return VersionUnavailable(
        table, version,
        f"{table} version {version} is no longer readable ({cause}): its transaction log entry or "
        f"its data files were removed (log cleanup, VACUUM). {LOG_RETENTION} keeps the log and "
        f"{FILE_RETENTION} keeps the files VACUUM may delete; the bundle sets both from the variable "
        f"{RETENTION_VARIABLE} when it creates a table (docs/deployment.md, 'Retention').")


def retention_properties(variables: dict) -> dict[str, str]:
    """The retention table properties for ``variables[table_retention_days]`` (empty when unset)."""
    days = variables.get(RETENTION_VARIABLE)
    if days in (None, ""):
        return {}
    interval = f"interval {int(days)} days"
    return {LOG_RETENTION: interval, FILE_RETENTION: interval}


@dataclass(frozen=True)
class HistoryEntry:
    """One commit of a table: its version, when, and what wrote it."""

    version: int
    timestamp: dt.datetime | None
    operation: str


def check_filters(where: list[tuple] | None) -> list[tuple]:
    """The filter triples, or a ValueError naming the first one the catalog cannot express."""
    for item in where or []:
        if len(item) != 3 or item[1] not in FILTER_OPS:
            raise ValueError(f"a filter is (column, op, value) with op in {FILTER_OPS}, not {item!r}")
    return list(where or [])


def check_write(mode: str, partition: dict | None) -> None:
    if mode not in WRITE_MODES:
        raise ValueError(f"mode must be one of {WRITE_MODES}, not {mode!r}")
    if mode == "replace_partition" and not partition:
        raise ValueError("replace_partition needs the partition to replace")


def sql_literal(value) -> str:
    """A SQL literal for a predicate: dates and strings quoted, quotes doubled."""
    if isinstance(value, (dt.date, dt.datetime)):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if value is None:
        return "NULL"
    return str(value)


def partition_predicate(partition: dict) -> str:
    """``{"scoring_date": date(2026,1,1)}`` -> ``scoring_date = '2026-01-01'``."""
    return " AND ".join(f"{column} = {sql_literal(value)}" for column, value in partition.items())


def is_spark_frame(data) -> bool:
    """Whether ``data`` is a Spark DataFrame (without importing pyspark when it is not)."""
    return type(data).__module__.startswith("pyspark.")


class TableCatalog(ABC):
    """Reads and writes the target's tables by logical name (``tables.py``)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def fqn(self, name: str) -> str:
        """The table's three-level name (also what errors and reports show)."""
        return self.settings.tables.fqn(name)

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether the table exists."""

    @abstractmethod
    def version(self, name: str) -> int | None:
        """The table's current Delta version (None when it does not exist), for lineage."""

    @abstractmethod
    def history(self, name: str, limit: int = 20) -> list[HistoryEntry]:
        """The table's latest commits, newest first."""

    @abstractmethod
    def read_arrow(self, name: str, where: list[tuple] | None = None, columns: list[str] | None = None,
                   version: int | None = None) -> pa.Table:
        """The table's rows (matching ``where``, only ``columns``) as Arrow: for code without Spark.

        ``version`` reads the table as it was at that Delta version (time travel: lineage)."""

    @abstractmethod
    def read(self, name: str, where: list[tuple] | None = None, columns: list[str] | None = None,
             version: int | None = None):
        """The table's rows as a Spark DataFrame, filters pushed down to the storage."""

    @abstractmethod
    def write(self, data, name: str, mode: str = "overwrite", partition: dict | None = None,
              partition_by: list[str] | None = None) -> int:
        """Write ``data`` (a Spark DataFrame or Arrow table) in one commit; the rows written."""

    @abstractmethod
    def update(self, name: str, values: dict, where: list[tuple]) -> int:
        """Set ``values`` on the rows matching ``where`` in one commit; how many rows changed.

        The condition is evaluated inside the commit, so ``where`` may hold the guard of a
        conditional update (``("acknowledged_at", "is null", None)``): of two concurrent
        updates, the second changes nothing.
        """

    @abstractmethod
    def exclusive(self, name: str, purpose: str) -> AbstractContextManager:
        """Hold the sole right to write ``name`` (and the tables a change derives from it) until exit.

        For a change that takes several commits (a member load writes three tables): a
        second holder gets ``WriteConflict`` at once, naming the first, instead of waiting
        or interleaving its commits with the first one's.
        """

    def append_rows(self, name: str, rows: list[dict], schema: pa.Schema) -> int:
        """Append a few rows (audit events, alerts, run history) with exactly ``schema``'s fields."""
        if not rows:
            return 0
        return self.write(pa.Table.from_pylist(rows, schema=schema), name, mode="append")

    def read_pandas(self, name: str, where: list[tuple] | None = None, columns: list[str] | None = None,
                    version: int | None = None):
        """``read_arrow`` as pandas, dates as ``datetime.date``."""
        return self.read_arrow(name, where, columns, version).to_pandas(date_as_object=True)

    def distinct_values(self, name: str, column: str, where: list[tuple] | None = None,
                        not_null: str | None = None) -> list:
        """The sorted distinct non-null values of ``column`` (rows where ``not_null`` is set)."""
        import pyarrow.compute as pc

        conditions = check_filters(where) + ([(not_null, "is not null", None)] if not_null else [])
        table = self.read_arrow(name, conditions, [column])
        return sorted(v for v in pc.unique(table.column(column)).to_pylist() if v is not None)
