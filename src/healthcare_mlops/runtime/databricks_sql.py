"""A Databricks SQL warehouse through databricks-sql-connector, authenticated by databricks-sdk.

The app's service principal (or the user, with ``X-Forwarded-Access-Token`` on behalf
of the user) is resolved by ``databricks.sdk.core.Config``; queries are always
parameterised with named markers (``:name``) and run in the target's catalog and schema.
``DatabricksSqlEngine`` runs the catalog's own statements; a person's SQL goes through
``WarehouseReadPath``, which refuses anything but one read statement before connecting.
"""

from __future__ import annotations

import os

import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.read_only import warehouse_read_statement
from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import PERSONAL_TABLES

WAREHOUSE_ENV = "DATABRICKS_WAREHOUSE_ID"


def warehouse_http_path(settings: Settings) -> str:
    warehouse_id = os.environ.get(WAREHOUSE_ENV) or settings.variables.get("warehouse_id")
    if not warehouse_id:
        raise UserError(f"no SQL warehouse: set {WAREHOUSE_ENV} (the app resource 'sql-warehouse') "
                        "or the bundle variable warehouse_id")
    return f"/sql/1.0/warehouses/{warehouse_id}"


def connection_arguments(settings: Settings, user_token: str | None = None) -> dict:
    """Arguments for ``databricks.sql.connect``: the user's token on behalf of the user,
    else the credentials databricks-sdk resolves (the app's service principal)."""
    from databricks.sdk.core import Config

    config = Config()
    arguments = {"server_hostname": config.hostname, "http_path": warehouse_http_path(settings),
                 "catalog": settings.catalog, "schema": settings.schema}
    if user_token:
        arguments["access_token"] = user_token
    else:
        arguments["credentials_provider"] = lambda: config.authenticate
    return arguments


class DatabricksSqlEngine:
    """Runs the console's SQL on a SQL warehouse; the same SQL text as the local DuckDB engine."""

    def __init__(self, settings: Settings, user_token: str | None = None):
        self.settings = settings
        self.user_token = user_token

    def connect(self):
        from databricks import sql

        return sql.connect(**connection_arguments(self.settings, self.user_token))

    def query(self, statement: str, params: dict | None = None) -> pd.DataFrame:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(statement, params or {})
            columns = [d[0] for d in cursor.description or []]
            return pd.DataFrame(cursor.fetchall(), columns=columns)

    def arrow(self, statement: str, params: dict | None = None):
        """The rows of a read statement as an Arrow table."""
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(statement, params or {})
            return cursor.fetchall_arrow()

    def execute(self, statement: str, params: dict | None = None) -> None:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(statement, params or {})


class WarehouseReadPath:
    """A person's SQL on the SQL warehouse (``healthcare-mlops sql`` on a workspace target): one
    read statement, the identifier tables only when asked for. The check is a courtesy in front
    of the warehouse; what the user may read is enforced by the Unity Catalog grants
    (docs/deployment.md)."""

    def __init__(self, settings: Settings, identifiers: bool = False, user_token: str | None = None):
        self.engine = DatabricksSqlEngine(settings, user_token)
        self.hidden = () if identifiers else PERSONAL_TABLES

    def query(self, statement: str, params: dict | None = None) -> pd.DataFrame:
        """The rows of one read statement; anything else is refused before a connection opens."""
        warehouse_read_statement(statement, self.hidden)
        return self.engine.query(statement, params)
