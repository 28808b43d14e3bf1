"""Spark DataFrames in and out of the target's tables.

Locally a DataFrame crosses to delta-rs as Arrow (no Delta jars without Maven); on
Databricks the same call is a Unity Catalog Delta write with ``replaceWhere``.
"""

from __future__ import annotations

import uuid

from pyspark.sql import DataFrame, SparkSession

from healthcare_mlops.runtime.storage import LocalTableStore, partition_predicate
from healthcare_mlops.settings import Settings

HISTORY_LOOKBACK = 20       # commits searched for this write's own (other jobs may commit meanwhile)


def read_table(spark: SparkSession, settings: Settings, name: str) -> DataFrame:
    """The table as a Spark DataFrame."""
    if settings.is_local:
        return spark.createDataFrame(LocalTableStore(settings).read_arrow(name))
    return spark.table(settings.tables.fqn(name))


def table_version(spark: SparkSession, settings: Settings, name: str) -> int | None:
    """The table's current Delta version (its history's latest), for lineage."""
    if settings.is_local:
        return LocalTableStore(settings).version(name)
    history = spark.sql(f"DESCRIBE HISTORY {settings.tables.fqn(name)} LIMIT 1").first()
    return int(history["version"]) if history else None


def table_exists(spark: SparkSession, settings: Settings, name: str) -> bool:
    if settings.is_local:
        return LocalTableStore(settings).exists(name)
    return spark.catalog.tableExists(settings.tables.fqn(name))


def write_table(df: DataFrame, settings: Settings, name: str, mode: str = "overwrite",
                partition: dict | None = None, partition_by: list[str] | None = None) -> int:
    """Write ``df`` atomically (``overwrite``, ``append`` or ``replace_partition``); return its row count."""
    if settings.is_local:
        data = df.toArrow()
        LocalTableStore(settings).write_arrow(data, name, mode=mode, partition=partition,
                                              partition_by=partition_by)
        return data.num_rows
    # The commit is tagged so that its row count is read from this write's own history entry,
    # not from whichever job committed to the table last (the quarantine has three writers).
    tag = f"healthcare-mlops:{uuid.uuid4().hex}"
    writer = df.write.format("delta").option("userMetadata", tag)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if mode == "replace_partition":
        writer = writer.mode("overwrite").option("replaceWhere", partition_predicate(partition))
    elif mode == "append":
        writer = writer.mode("append").option("mergeSchema", "true")
    else:
        writer = writer.mode("overwrite").option("overwriteSchema", "true")
    writer.saveAsTable(settings.tables.fqn(name))
    # Counting the frame before writing would evaluate it twice (scoring twice, for predictions).
    history = df.sparkSession.sql(f"DESCRIBE HISTORY {settings.tables.fqn(name)} LIMIT {HISTORY_LOOKBACK}")
    return rows_written(history.select("userMetadata", "operation", "operationMetrics").collect(), tag)


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
