"""The console's SQL engines: DuckDB over the local Delta tables, or a Databricks SQL warehouse.

Both run the same parameterised SQL text (app/queries.py) and answer three questions the
console's caching layer asks: ``snapshot`` (what the data looks like now, a cache key:
the local tables' Delta versions; nothing for the warehouse, whose results expire by
time), ``table_names`` (which console tables exist) and ``arrow`` (a query's rows).
Both accept one read statement only (``runtime/read_only.py``), and neither can read the
tables with direct identifiers: the local engine's locked session holds only the console's
tables, and the warehouse engine refuses a query that names an identifier table.
"""

from __future__ import annotations

import os
import threading

import pyarrow as pa

from healthcare_mlops import tables as T
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import Settings

# The only tables the console reads; the identifier tables (T.PERSONAL_TABLES) are never queryable there.
CONSOLE_TABLES = (T.ML_PATIENT_PREDICTIONS, T.ML_DRIFT_METRICS, T.ML_FAIRNESS_METRICS, T.ML_MODEL_ALERTS,
                  T.MODEL_GOVERNANCE_LOG, T.JOB_RUNS)


def _arrow_of(relation) -> pa.Table:
    """A DuckDB relation's rows as Arrow (``to_arrow_table`` in DuckDB 1.4+, ``arrow`` before)."""
    return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()


class LocalConsoleEngine:
    """The locked DuckDB session of ``LocalSqlEngine`` over the console's tables only (read
    natively where the same), kept open; one query at a time."""

    @staticmethod
    def snapshot(settings: Settings) -> tuple:
        """Each console table's latest Delta version: a new commit makes a new engine and new results."""
        return tuple(sorted(table_versions(settings).items()))

    def __init__(self, settings: Settings, user_token: str | None = None):
        from healthcare_mlops.runtime.sql_engine import LocalSqlEngine

        self.settings = settings
        engine = LocalSqlEngine(settings, CONSOLE_TABLES)
        self.connection = engine.connect()
        self.native = engine.native
        self.lock = threading.Lock()

    def table_names(self) -> set[str]:
        return {name for name, version in table_versions(self.settings).items() if version is not None}

    def arrow(self, sql: str, params: dict) -> pa.Table:
        import duckdb

        from healthcare_mlops.runtime.read_only import duckdb_read_statement
        from healthcare_mlops.runtime.sql_engine import duckdb_parameters

        statement = duckdb_read_statement(duckdb_parameters(sql))
        with self.lock:
            try:
                return _arrow_of(self.connection.sql(statement, params=params or None))
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
        from healthcare_mlops.runtime.read_only import warehouse_read_statement

        warehouse_read_statement(sql)

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
    """Locally: each console table's latest Delta commit (None when it does not exist).

    Asked before every console query (the cache key), so the log folders are located once per
    home, catalog and schema: resolving the home's path again each time cost more than listing."""
    versions = {}
    for name, log in _delta_logs(settings):
        try:
            commits = [int(entry.name[:-5]) for entry in os.scandir(log)
                       if entry.name.endswith(".json") and entry.name[:-5].isdigit()]
        except (FileNotFoundError, NotADirectoryError):
            commits = []
        versions[name] = max(commits) if commits else None
    return versions


_LOG_FOLDERS: dict[tuple, tuple[tuple[str, str], ...]] = {}


def _delta_logs(settings: Settings) -> tuple[tuple[str, str], ...]:
    """(table, its ``_delta_log`` folder) of every console table, remembered per home, catalog and schema."""
    key = (str(settings.home), settings.catalog, settings.schema)
    if key not in _LOG_FOLDERS:
        _LOG_FOLDERS[key] = tuple((name, os.path.join(settings.table_location(name), "_delta_log"))
                                  for name in CONSOLE_TABLES)
    return _LOG_FOLDERS[key]
