"""Append a few rows (audit events, alerts, run history) to a table, on either runtime.

Locally: one delta-rs commit. On Databricks: a Spark append inside a job, or a
parameterised INSERT through the SQL warehouse from the console (which has no Spark).
"""

from __future__ import annotations

import pyarrow as pa

from healthcare_mlops.runtime.storage import LocalTableStore
from healthcare_mlops.settings import Settings


def append_rows(settings: Settings, name: str, rows: list[dict], schema: pa.Schema) -> None:
    """Append ``rows`` (dicts with exactly ``schema``'s fields) to the table ``name``."""
    if not rows:
        return
    table = pa.Table.from_pylist(rows, schema=schema)
    if settings.is_local:
        LocalTableStore(settings).write_arrow(table, name, mode="append")
        return
    spark = _active_spark()
    if spark is not None:
        spark.createDataFrame(table.to_pandas()).write.mode("append").saveAsTable(settings.tables.fqn(name))
        return
    from healthcare_mlops.runtime.databricks_sql import DatabricksSqlEngine, insert_statement

    engine = DatabricksSqlEngine(settings)
    statement = insert_statement(settings.tables.fqn(name), schema.names)
    for row in table.to_pylist():
        engine.execute(statement, row)


def _active_spark():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return SparkSession.getActiveSession()
