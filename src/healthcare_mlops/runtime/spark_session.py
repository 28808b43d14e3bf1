"""The Spark session: ``local[*]`` with the UI off on a laptop, the cluster's session on Databricks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from healthcare_mlops.settings import Settings

LOCAL_LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
# Spark 4's launcher always starts the JVM with --add-modules=jdk.incubator.vector (for Spark
# ML's vectorised BLAS; SPARK-48021), and the JDK then prints this line to stderr at start-up,
# unconditionally: no JVM option or log setting turns it off. Nothing here uses Spark ML.
JDK_INCUBATOR_NOTICE = b"WARNING: Using incubator modules: jdk.incubator.vector"


def _relay_jvm_stderr(stream) -> None:
    """Copy the local JVM's stderr to this process's (fd 2, where the JVM wrote before),
    all of it but the JDK's incubator notice."""
    for line in iter(stream.readline, b""):
        if not line.startswith(JDK_INCUBATOR_NOTICE):
            os.write(2, line)


def _local_context(conf) -> None:
    """Start the local SparkContext with the JVM's stderr relayed (``_relay_jvm_stderr``);
    pyspark's ``launch_gateway`` takes Popen arguments for exactly this."""
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway

    gateway = None
    if SparkContext._gateway is None:          # the first session of this process starts the JVM
        gateway = launch_gateway(conf, popen_kwargs={"stderr": subprocess.PIPE})
        threading.Thread(target=_relay_jvm_stderr, args=(gateway.proc.stderr,), name="jvm-stderr",
                         daemon=True).start()
    SparkContext.getOrCreate(conf) if gateway is None else SparkContext(conf=conf, gateway=gateway)


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
    from pyspark import SparkConf

    conf = SparkConf().setMaster(master).setAppName(app_name).setAll([
        ("spark.ui.enabled", "false"),
        ("spark.ui.showConsoleProgress", "false"),
        ("spark.sql.session.timeZone", "UTC"),
        ("spark.sql.shuffle.partitions", os.environ.get("HEALTHCARE_MLOPS_SHUFFLE_PARTITIONS", "8")),
        ("spark.sql.execution.arrow.pyspark.enabled", "true"),
        ("spark.driver.memory", os.environ.get("HEALTHCARE_MLOPS_DRIVER_MEMORY", "4g")),
        ("spark.sql.ansi.enabled", "false"),
        ("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOCAL_LOG_CONFIG.as_uri()}"),
    ])
    _local_context(conf)
    return SparkSession.builder.getOrCreate()
