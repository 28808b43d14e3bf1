"""Read-only SQL over the target's tables: DuckDB locally, the same SQL text everywhere.

Each existing local Delta table is exposed as the view ``<catalog>.<schema>.<table>``
on an in-memory DuckDB catalog named like the target's catalog, and the session's
search path is set to that schema, so unqualified names resolve the way they do in a
Databricks SQL warehouse with ``USE CATALOG``/``USE SCHEMA``.
"""

from __future__ import annotations

import re

import duckdb
import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import Settings

_NAMED_MARKER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def duckdb_parameters(sql: str) -> str:
    """Databricks and Spark SQL name parameters ``:name``; DuckDB names them ``$name``."""
    return _NAMED_MARKER.sub(r"$\1", sql)


class LocalSqlEngine:
    """DuckDB over the local Delta tables, opened at their latest committed version."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = DeltaCatalog(settings)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A fresh connection whose views point at each table's latest Delta version."""
        catalog, schema = self.settings.catalog, self.settings.schema
        con = duckdb.connect()
        con.execute(f'ATTACH \':memory:\' AS "{catalog}"')
        con.execute(f'CREATE SCHEMA "{catalog}"."{schema}"')
        for name in self.settings.tables.names():
            if not self.store.exists(name):
                continue
            dataset = self.store.delta_table(name).to_pyarrow_dataset()
            con.register(f"__delta_{name}", dataset)
            con.execute(f'CREATE VIEW "{catalog}"."{schema}"."{name}" AS SELECT * FROM "__delta_{name}"')  # nosec B608: catalog, schema and table names come from the settings and tables.py, not from a user
        con.execute(f'USE "{catalog}"."{schema}"')
        return con

    def query(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        """Run one read query with named parameters (``:name``) and return the rows."""
        con = self.connect()
        try:
            # DATE columns stay dates (datetime.date), not midnight timestamps.
            if params:
                return con.execute(duckdb_parameters(sql), params).fetchdf(date_as_object=True)
            return con.execute(sql).fetchdf(date_as_object=True)
        except duckdb.Error as exc:
            raise UserError(f"query failed: {str(exc).splitlines()[0]}") from exc
        finally:
            con.close()


def sql_engine(settings: Settings) -> LocalSqlEngine:
    """The SQL engine for the target."""
    if settings.is_local:
        return LocalSqlEngine(settings)
    from healthcare_mlops.runtime.databricks_sql import DatabricksSqlEngine

    return DatabricksSqlEngine(settings)
