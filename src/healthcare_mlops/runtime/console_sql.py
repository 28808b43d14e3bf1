"""The console's SQL engines: DuckDB over the local Delta tables, or a Databricks SQL warehouse.

Both run the same parameterised SQL text (app/queries.py) and answer three questions the
console's caching layer asks: ``snapshot`` (what the data looks like now, a cache key:
the local tables' Delta versions; nothing for the warehouse, whose results expire by
time), ``table_names`` (which console tables exist) and ``arrow`` (a query's rows).
Neither can read the personal-data tables: the local engine drops their views, and the
console's queries never name them.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import pyarrow as pa

from healthcare_mlops import tables as T
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import Settings

# The only tables the console reads; the personal-data tables are never queryable there.
CONSOLE_TABLES = (T.ML_PATIENT_PREDICTIONS, T.ML_DRIFT_METRICS, T.ML_FAIRNESS_METRICS, T.ML_MODEL_ALERTS,
                  T.MODEL_GOVERNANCE_LOG, T.JOB_RUNS)
PERSONAL_TABLES = (T.SILVER_PATIENTS, T.DIM_PATIENTS)


def _arrow_of(relation) -> pa.Table:
    """A DuckDB relation's rows as Arrow (``to_arrow_table`` in DuckDB 1.4+, ``arrow`` before)."""
    return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()


def _sql_string(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _partition_text(value) -> str:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)


def native_parquet_view(connection, store, name: str, view: str) -> bool:
    """Point ``view`` at DuckDB's own Parquet reader over the table's current files.

    ``LocalSqlEngine`` exposes each Delta snapshot as a pyarrow dataset; DuckDB reads the same
    files about three times faster natively (and prunes partitions by the hive-style folder
    names). The native view replaces the dataset view only when it is provably the same table:
    every file's folder names carry exactly its Delta partition values, and the columns and
    their types are identical. Otherwise the dataset view stays. Returns whether it replaced it.
    """
    import urllib.parse

    import duckdb

    table = store.delta_table(name)
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return False
    partitions = list(table.metadata().partition_columns)
    root = urllib.parse.unquote(urllib.parse.urlparse(table.table_uri).path) \
        if "://" in table.table_uri else table.table_uri
    files = []
    for row in actions.select(["path", *(f"partition.{c}" for c in partitions)]).to_pylist():
        relative = urllib.parse.unquote(row["path"])
        segments = relative.split("/")
        for column in partitions:
            value = row[f"partition.{column}"]
            if value is None or f"{column}={_partition_text(value)}" not in segments:
                return False
        files.append(os.path.join(root, relative))
    expected = connection.execute(f"DESCRIBE {view}").fetchall()
    types = {column: kind for column, kind, *_ in expected}
    hive = ", ".join(f"{_sql_string(c)}: {_sql_string(types[c])}" for c in partitions)
    source = (f"read_parquet([{', '.join(_sql_string(f) for f in files)}], union_by_name = true"
              + (f", hive_partitioning = true, hive_types = {{{hive}}}" if partitions else ", hive_partitioning = false")
              + ")")
    select = f"SELECT {', '.join(chr(34) + c + chr(34) for c, *_ in expected)} FROM {source}"  # nosec B608: file paths are quoted by _sql_string, column names come from the view's own DESCRIBE
    try:
        native = connection.execute(f"DESCRIBE {select}").fetchall()
    except duckdb.Error:   # a file DuckDB cannot read the same way: keep the dataset view
        return False
    if [(c, k) for c, k, *_ in native] != [(c, k) for c, k, *_ in expected]:
        return False
    connection.execute(f"CREATE OR REPLACE VIEW {view} AS {select}")
    return True


class LocalConsoleEngine:
    """DuckDB over the console's tables (``LocalSqlEngine``'s views, read natively where the
    same), without the personal-data tables; one query at a time."""

    @staticmethod
    def snapshot(settings: Settings) -> tuple:
        """Each console table's latest Delta version: a new commit makes a new engine and new results."""
        return tuple(sorted(table_versions(settings).items()))

    def __init__(self, settings: Settings, user_token: str | None = None):
        from healthcare_mlops.runtime.sql_engine import LocalSqlEngine

        self.settings = settings
        engine = LocalSqlEngine(settings)
        self.connection = engine.connect()
        schema = f'"{settings.catalog}"."{settings.schema}"'
        for name in PERSONAL_TABLES:
            self.connection.execute(f'DROP VIEW IF EXISTS {schema}."{name}"')
            self.connection.unregister(f"__delta_{name}")       # a no-op when it was never registered
        self.native = {name for name in CONSOLE_TABLES if engine.store.exists(name)
                       and native_parquet_view(self.connection, engine.store, name, f'{schema}."{name}"')}
        self.lock = threading.Lock()

    def table_names(self) -> set[str]:
        return {name for name, version in table_versions(self.settings).items() if version is not None}

    def arrow(self, sql: str, params: dict) -> pa.Table:
        import duckdb

        from healthcare_mlops.runtime.sql_engine import duckdb_parameters

        with self.lock:
            try:
                return _arrow_of(self.connection.sql(duckdb_parameters(sql), params=params or None))
            except duckdb.Error as exc:
                raise UserError(f"query failed: {str(exc).splitlines()[0]}") from exc


class WarehouseConsoleEngine:
    """A Databricks SQL warehouse connection, reopened once if it went stale."""

    @staticmethod
    def snapshot(settings: Settings) -> tuple:
        """Nothing to key on: warehouse results are cached for a short time instead."""
        return ()

    def __init__(self, settings: Settings, user_token: str | None = None):
        from healthcare_mlops.runtime.databricks_sql import DatabricksSqlEngine

        self.settings = settings
        self.engine = DatabricksSqlEngine(settings, user_token)
        self.connection = None
        self.lock = threading.Lock()

    def _run(self, work):
        from databricks.sql.exc import Error as DatabricksSqlError

        with self.lock:
            for attempt in (1, 2):
                try:
                    if self.connection is None:
                        self.connection = self.engine.connect()
                    with self.connection.cursor() as cursor:
                        return work(cursor)
                except UserError:
                    raise
                except Exception as exc:
                    try:
                        if self.connection is not None:
                            self.connection.close()
                    except DatabricksSqlError:
                        pass   # the connection is already broken; a new one follows
                    self.connection = None
                    if attempt == 2:
                        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                        raise UserError(f"query failed on the SQL warehouse: {first}") from exc

    def arrow(self, sql: str, params: dict) -> pa.Table:
        def work(cursor):
            cursor.execute(sql, params)
            return cursor.fetchall_arrow()
        return self._run(work)

    def table_names(self) -> set[str]:
        def work(cursor):
            cursor.tables(catalog_name=self.settings.catalog, schema_name=self.settings.schema)
            return {str(row[2]).lower() for row in cursor.fetchall()}   # TABLE_CAT, TABLE_SCHEM, TABLE_NAME
        return self._run(work)



def table_versions(settings: Settings) -> dict:
    """Locally: each console table's latest Delta commit (None when it does not exist)."""
    versions = {}
    for name in CONSOLE_TABLES:
        log = Path(settings.table_location(name)) / "_delta_log"
        try:
            commits = [int(entry.name[:-5]) for entry in os.scandir(log)
                       if entry.name.endswith(".json") and entry.name[:-5].isdigit()]
        except (FileNotFoundError, NotADirectoryError):
            commits = []
        versions[name] = max(commits) if commits else None
    return versions
