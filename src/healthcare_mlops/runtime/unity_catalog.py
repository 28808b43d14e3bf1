"""The Databricks table catalog: Unity Catalog Delta tables, through Spark or the SQL warehouse.

A job has Spark: reads are ``spark.table`` with the filters pushed down, writes are Delta
``saveAsTable`` (``replaceWhere`` for a partition, ``mergeSchema`` for an append), each
one commit tagged with ``userMetadata`` so that its row count is read from its own
``DESCRIBE HISTORY`` entry (counting the frame first would evaluate it twice: scoring
twice, for predictions). The console has no Spark: it appends and updates through the
SQL warehouse with named parameters, never formatted values.

Updates are one SQL ``UPDATE`` whose ``WHERE`` holds the guard, so a conditional update
(acknowledge once) is atomic on the table.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable

import pyarrow as pa

from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.catalog_base import (COMPARISONS, HistoryEntry, TableCatalog, version_unavailable,
                                              check_filters, check_write, is_spark_frame, partition_predicate,
                                              retention_properties)
from healthcare_mlops.settings import Settings

HISTORY_LOOKBACK = 20       # commits searched for this write's own (other jobs may commit meanwhile)
# What Databricks says when a version's log or files are gone (time travel past retention, VACUUM).
UNREADABLE_VERSION_MARKERS = ("VERSION_NOT_FOUND", "Cannot time travel", "DELTA_FILE_NOT_FOUND",
                              "FileNotFoundException", "DELTA_VERSIONS_NOT_CONTIGUOUS", "DELTA_LOG_FILE_NOT_FOUND")


def time_travel_query(table: str, version: int) -> str:
    """The statement that reads ``table`` as it was at Delta ``version``."""
    return f"SELECT * FROM {table} VERSION AS OF {int(version)}"  # nosec B608  # the name comes from the settings, the version is an int


def retention_statement(table: str, properties: dict[str, str]) -> str:
    """``ALTER TABLE ... SET TBLPROPERTIES`` for the retention properties of a new table."""
    assignments = ", ".join(f"'{key}' = '{value}'" for key, value in sorted(properties.items()))
    return f"ALTER TABLE {table} SET TBLPROPERTIES ({assignments})"


def unreadable_version(message: str) -> bool:
    """Whether a Databricks error says a table version's log or files are gone."""
    return any(marker in message for marker in UNREADABLE_VERSION_MARKERS)


def sql_condition(where: list[tuple] | None, prefix: str = "w") -> tuple[str, dict]:
    """The filter triples as a SQL condition with named parameters: ``("a = :w0", {"w0": 1})``."""
    terms, params = [], {}
    for index, (column, op, value) in enumerate(check_filters(where)):
        name = f"{prefix}{index}"
        if op == "is null":
            terms.append(f"{column} IS NULL")
        elif op == "is not null":
            terms.append(f"{column} IS NOT NULL")
        elif op == "in":
            names = [f"{name}_{i}" for i in range(len(value))]
            params.update(zip(names, value))
            terms.append(f"{column} IN ({', '.join(':' + n for n in names)})" if names else "FALSE")
        else:
            params[name] = value
            terms.append(f"{column} {'<>' if op == '!=' else op} :{name}")
    return (" AND ".join(terms) or "TRUE"), params


def update_statement(table: str, values: dict, where: list[tuple]) -> tuple[str, dict]:
    """``UPDATE t SET a = :set_a WHERE ...`` and its parameters."""
    condition, params = sql_condition(where)
    assignments = ", ".join(f"{column} = :set_{column}" for column in values)
    params.update({f"set_{column}": value for column, value in values.items()})
    return f"UPDATE {table} SET {assignments} WHERE {condition}", params  # nosec B608  # table and column names come from the calling code; values are bound parameters


def insert_statement(table: str, columns: list[str]) -> str:
    """``INSERT INTO t (a, b) VALUES (:a, :b)``: named parameters, never formatted values."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"  # nosec B608  # table and column names come from the calling code; values are bound parameters


def rows_written(history: list, tag: str) -> int:
    """The rows the commit tagged ``tag`` wrote, from its ``operationMetrics`` in ``DESCRIBE HISTORY`` rows."""
    commit = next((row for row in history if row["userMetadata"] == tag), None)
    if commit is None:
        raise RuntimeError(f"no commit tagged {tag} in the table's last {HISTORY_LOOKBACK} commits: "
                           "cannot reconcile row counts")
    value = (commit["operationMetrics"] or {}).get("numOutputRows")
    if value is None:
        raise RuntimeError(f"the Delta commit ({commit['operation']}) reports no numOutputRows: "
                           "cannot reconcile row counts")
    return int(value)


class UnityCatalog(TableCatalog):
    """Unity Catalog tables ``<catalog>.<schema>.<table>``.

    ``spark`` is the job's session (None: the active one, if any; False: never Spark, as in
    the console). ``name_for`` maps a logical name to the name Spark knows (default: the
    three-level name); ``table_format`` is ``delta`` on Databricks. The contract tests run this class
    on local Spark with a mapping into Spark's own catalog and Parquet tables, the closest
    honest stand-in here (no Delta jars): the Delta-only paths (``replaceWhere``, history,
    ``UPDATE``) are tested by the statements they build.
    """

    def __init__(self, settings: Settings, spark=None, sql=None, table_format: str = "delta",
                 name_for: Callable[[str], str] | None = None):
        super().__init__(settings)
        self._spark = spark
        self._sql = sql
        self.table_format = table_format
        self._name_for = name_for or settings.tables.fqn

    def fqn(self, name: str) -> str:
        return self._name_for(name)

    # -- engines -------------------------------------------------------------------------------
    @property
    def spark(self):
        """The job's Spark session; None in the console (the warehouse serves it)."""
        if self._spark is False:
            return None
        if self._spark is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError:   # the console on Databricks Apps installs no pyspark: the warehouse serves it
                return None
            self._spark = SparkSession.getActiveSession()
        return self._spark

    @property
    def warehouse(self):
        if self._sql is None:
            from healthcare_mlops.runtime.databricks_sql import DatabricksSqlEngine

            self._sql = DatabricksSqlEngine(self.settings)
        return self._sql

    def _statement(self, statement: str, params: dict | None = None) -> list[dict]:
        """Rows of a SQL statement, on Spark when there is one, else on the warehouse."""
        if self.spark is not None:
            return [row.asDict(recursive=True) for row in self.spark.sql(statement, args=params or None).collect()]
        return self.warehouse.query(statement, params).to_dict(orient="records")

    # -- reads ---------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        if self.spark is not None:
            return bool(self.spark.catalog.tableExists(self.fqn(name)))
        catalog, schema, table = self.fqn(name).split(".")
        rows = self.warehouse.query(f"SELECT table_name FROM {catalog}.information_schema.tables "  # nosec B608  # the catalog comes from the settings; schema and table are bound parameters
                                    "WHERE table_schema = :schema AND table_name = :table",
                                    {"schema": schema, "table": table})
        return not rows.empty

    def history(self, name: str, limit: int = 20) -> list[HistoryEntry]:
        rows = self._statement(f"DESCRIBE HISTORY {self.fqn(name)} LIMIT {int(limit)}")
        return [HistoryEntry(int(r["version"]), r.get("timestamp"), str(r.get("operation") or "")) for r in rows]

    def version(self, name: str) -> int | None:
        if not self.exists(name):
            return None
        latest = self.history(name, 1)
        return latest[0].version if latest else None

    def read(self, name: str, where: list[tuple] | None = None, columns: list[str] | None = None,
             version: int | None = None):
        from pyspark.sql import functions as F

        if self.spark is None:
            raise UserError("a Spark read needs a Spark session (run inside a Databricks job)")
        if not self.exists(name):
            raise UserError(f"table {self.fqn(name)} does not exist yet")
        frame = (self.spark.sql(time_travel_query(self.fqn(name), version)) if version is not None
                 else self.spark.table(self.fqn(name)))
        for column, op, value in check_filters(where):
            frame = frame.where(spark_condition(F.col(column), op, value))
        return frame.select(*columns) if columns else frame

    def read_arrow(self, name: str, where: list[tuple] | None = None, columns: list[str] | None = None,
                   version: int | None = None) -> pa.Table:
        try:
            if self.spark is not None:
                return self.read(name, where, columns, version).toArrow()
            condition, params = sql_condition(where)
            selected = ", ".join(columns) if columns else "*"
            as_of = f" VERSION AS OF {int(version)}" if version is not None else ""
            return self.warehouse.arrow(f"SELECT {selected} FROM {self.fqn(name)}{as_of} WHERE {condition}", params)  # nosec B608  # table and column names come from the calling code; filter values are bound parameters
        except Exception as exc:  # only an unreadable time-travel version is translated; the rest propagates
            if version is None or not unreadable_version(str(exc)):
                raise
            raise version_unavailable(self.fqn(name), version, str(exc).splitlines()[0]) from exc

    def distinct_values(self, name: str, column: str, where: list[tuple] | None = None,
                        not_null: str | None = None) -> list:
        """A Spark aggregate (only the distinct values reach the driver)."""
        if self.spark is None:
            return super().distinct_values(name, column, where, not_null)
        conditions = check_filters(where) + ([(not_null, "is not null", None)] if not_null else [])
        rows = self.read(name, conditions, [column]).distinct().collect()
        return sorted(row[0] for row in rows if row[0] is not None)

    # -- writes --------------------------------------------------------------------------------
    def write(self, data, name: str, mode: str = "overwrite", partition: dict | None = None,
              partition_by: list[str] | None = None) -> int:
        check_write(mode, partition)
        if self.spark is None:
            if mode != "append" or is_spark_frame(data):
                raise UserError(f"{mode} of {self.fqn(name)} needs Spark (a Databricks job)")
            return self._insert(name, data)
        frame = data if is_spark_frame(data) else self.spark.createDataFrame(data.to_pandas())
        if self.table_format != "delta":
            return self._save_plain(frame, name, mode, partition_by)
        # Tagged so that its row count is read from this write's own history entry, not from
        # whichever job committed to the table last (the quarantine has three writers).
        tag = f"healthcare-mlops:{uuid.uuid4().hex}"
        writer = frame.write.format("delta").option("userMetadata", tag)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        for key, value in write_options(mode, partition).items():
            writer = writer.option(key, value)
        created = not self.exists(name)
        writer.mode("append" if mode == "append" else "overwrite").saveAsTable(self.fqn(name))
        properties = retention_properties(self.settings.variables)
        if created and properties:
            self.spark.sql(retention_statement(self.fqn(name), properties))
        history = self.spark.sql(f"DESCRIBE HISTORY {self.fqn(name)} LIMIT {HISTORY_LOOKBACK}")
        return rows_written(history.select("userMetadata", "operation", "operationMetrics").collect(), tag)

    def _save_plain(self, frame, name: str, mode: str, partition_by: list[str] | None) -> int:
        """A non-Delta table (the contract tests' stand-in): no partition replace, no commit metrics."""
        if mode == "replace_partition":
            raise UserError(f"replace_partition needs a Delta table, and {self.fqn(name)} is {self.table_format}")
        # The rows written are counted in the table, before and after (serverless refuses caching
        # the frame, and counting it first would evaluate it twice); one writer: the stand-in's tests.
        before = self.spark.table(self.fqn(name)).count() if mode == "append" and self.exists(name) else 0
        writer = frame.write.format(self.table_format)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.mode(mode).saveAsTable(self.fqn(name))
        return self.spark.table(self.fqn(name)).count() - before

    def _insert(self, name: str, data: pa.Table) -> int:
        statement = insert_statement(self.fqn(name), data.schema.names)
        for row in data.to_pylist():
            self.warehouse.execute(statement, row)
        return data.num_rows

    def update(self, name: str, values: dict, where: list[tuple]) -> int:
        statement, params = update_statement(self.fqn(name), values, where)
        rows = self._statement(statement, params)
        return int(rows[0].get("num_affected_rows", 0)) if rows else 0

    @contextlib.contextmanager
    def exclusive(self, name: str, purpose: str):
        """No lock object on a workspace: the jobs service is the guard.

        The only multi-commit writer, the ``load_members`` job, has ``max_concurrent_runs:
        1`` (a second run queues), and of two Delta commits to one partition the second
        fails with a concurrent-modification error rather than overwriting the first.
        """
        yield


def write_options(mode: str, partition: dict | None) -> dict:
    """The Delta writer options of a write mode."""
    if mode == "replace_partition":     # mergeSchema: a contract that gains columns writes into an older table
        return {"replaceWhere": partition_predicate(partition), "mergeSchema": "true"}
    if mode == "append":
        return {"mergeSchema": "true"}
    return {"overwriteSchema": "true"}


def spark_condition(field, op: str, value):
    """One filter triple as a Spark Column condition."""
    if op == "is null":
        return field.isNull()
    if op == "is not null":
        return field.isNotNull()
    if op == "in":
        return field.isin(list(value))
    if op not in COMPARISONS:
        raise ValueError(f"unknown comparison {op!r}")
    return {"=": field.__eq__, "!=": field.__ne__, "<": field.__lt__, "<=": field.__le__,
            ">": field.__gt__, ">=": field.__ge__}[op](value)
