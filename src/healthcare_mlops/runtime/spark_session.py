"""The Spark session: ``local[*]`` with the UI off on a laptop, the cluster's session on Databricks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from healthcare_mlops.settings import Settings

LOCAL_LOG_CONFIG = Path(__file__).with_name("log4j2.properties")


def get_spark(settings: Settings | None = None, app_name: str = "healthcare-mlops"):
    """Return the active session, or build a local one tuned for a small machine.

    pyspark is imported here, not with the module: the console and the light CLI commands
    import ``runtime`` without a JVM."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if settings is not None and not settings.is_local:
        return SparkSession.builder.getOrCreate()
    master = os.environ.get("HEALTHCARE_MLOPS_SPARK_MASTER", "local[*]")
    # Python workers (mapInArrow, UDFs) run this interpreter, not whatever python3 is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")       # one machine: no network address to guess
    return (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", os.environ.get("HEALTHCARE_MLOPS_SHUFFLE_PARTITIONS", "8"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", os.environ.get("HEALTHCARE_MLOPS_DRIVER_MEMORY", "4g"))
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOCAL_LOG_CONFIG.as_uri()}")
        .getOrCreate()
    )
