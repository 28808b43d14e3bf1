"""Read-only SQL over the target's tables for people: DuckDB locally, the same SQL text everywhere.

Locally each query runs in a fresh locked DuckDB session (``runtime/duckdb_session.py``) whose
views point at each table's latest committed Delta version; on a workspace target the query goes
to the SQL warehouse (``runtime/databricks_sql.WarehouseReadPath``). Both accept one read
statement only (``runtime/read_only.py``) and leave the tables with direct identifiers out
unless they are asked for (``identifiers=True``; the CLI checks the caller's role first).
"""

from __future__ import annotations

import re

import duckdb
import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.duckdb_session import open_locked
from healthcare_mlops.runtime.read_only import duckdb_read_statement, hidden_tables_named, identifiers_hint
from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import ALL_TABLES, PERSONAL_TABLES

_NAMED_MARKER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def duckdb_parameters(sql: str) -> str:
    """Databricks and Spark SQL name parameters ``:name``; DuckDB names them ``$name``."""
    return _NAMED_MARKER.sub(r"$\1", sql)


def readable_tables(identifiers: bool) -> tuple[str, ...]:
    """The tables a person's session holds: all of them, or all but the identifier tables."""
    return ALL_TABLES if identifiers else tuple(t for t in ALL_TABLES if t not in PERSONAL_TABLES)


class LocalSqlEngine:
    """DuckDB over the local Delta tables, opened locked at their latest committed version."""

    def __init__(self, settings: Settings, tables: tuple[str, ...] = readable_tables(False)):
        self.settings = settings
        self.tables = tables
        self.native: set[str] = set()     # the tables the last connection reads natively

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A fresh locked connection whose views point at each table's latest Delta version."""
        connection, self.native = open_locked(self.settings, self.tables)
        return connection

    def query(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        """Run one read statement with named parameters (``:name``) and return the rows; refuse
        anything else before a connection opens."""
        statement = duckdb_read_statement(duckdb_parameters(sql) if params else sql)
        con = self.connect()
        try:
            # DATE columns stay dates (datetime.date), not midnight timestamps.
            return con.execute(statement, params or None).fetchdf(date_as_object=True)
        except duckdb.CatalogException as exc:
            hidden = hidden_tables_named(statement.query, set(PERSONAL_TABLES) - set(self.tables))
            cause = identifiers_hint(hidden) if hidden else str(exc).splitlines()[0]
            raise UserError(f"query failed: {cause}") from exc
        except duckdb.Error as exc:
            raise UserError(f"query failed: {str(exc).splitlines()[0]}") from exc
        finally:
            con.close()


def sql_engine(settings: Settings, identifiers: bool = False):
    """The read-only SQL engine for the target; ``identifiers`` adds the identifier tables."""
    if settings.is_local:
        return LocalSqlEngine(settings, readable_tables(identifiers))
    from healthcare_mlops.runtime.databricks_sql import WarehouseReadPath

    return WarehouseReadPath(settings, identifiers)
