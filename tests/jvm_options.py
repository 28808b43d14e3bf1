"""The options of every JVM the test suite starts, in one place: conftest.py applies them to the
run's environment, tests/test_spark_session.py checks that they reach the JVM, and
benchmarks/bench_test_jvm.py measures what they save.

The suite's JVMs (its Spark session, each job process's, each Spark Connect server) live seconds
to minutes on small data. On two cores the suite is CPU-bound, and such a JVM spends about half
of its CPU in the optimising JIT compiler and the parallel collector's threads, and half of its
start in loading and verifying Spark's classes. So every JVM gets the first JIT tier and the
serial collector, and maps the classes a small Spark job loads from one archive (the JDK's class
data sharing) written once per run before the workers start; none of it changes a result.
spark-submit puts ``SPARK_SUBMIT_OPTS`` on the command line of every JVM it starts (pyspark's
session and the Connect server start theirs through it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import MutableMapping
from pathlib import Path

SUBMIT_OPTS_ENV = "SPARK_SUBMIT_OPTS"
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
# A JVM whose class path differs from the archive's prints a CDS warning on stdout and runs without it.
QUIET_ARCHIVE = "-Xlog:cds=off,cds+dynamic=off"
# A small Spark job in the JVM that writes the archive when it exits: the script closes the JVM's
# stdin (pyspark's gateway then exits) and waits for the JVM, which writes the archive on its way out.
ARCHIVE_JOB = """
from pyspark import SparkContext
from pyspark.sql import functions as F
from healthcare_mlops.runtime.spark_session import get_spark
spark = get_spark(api="classic")
frame = spark.range(2000).select((F.col("id") % 7).alias("k"), F.col("id").cast("string").alias("v"))
frame.groupBy("k").agg(F.count("v"), F.max("v")).join(frame, "k").toPandas()
process = SparkContext._gateway.proc
spark.stop()
process.stdin.close()
process.wait(timeout=300)
"""


def with_test_jvm_options(environment: MutableMapping[str, str], extra: str = TEST_JVM_OPTIONS) -> None:
    """Add ``extra`` to ``environment``'s SPARK_SUBMIT_OPTS once, after the caller's own."""
    current = environment.get(SUBMIT_OPTS_ENV, "")
    if extra not in current:
        environment[SUBMIT_OPTS_ENV] = f"{current} {extra}".strip()


def class_archive_options(archive: Path) -> str:
    """The options that map ``archive``'s classes into a JVM (quietly where they cannot)."""
    return f"-XX:SharedArchiveFile={archive} {QUIET_ARCHIVE}"


def build_class_archive(archive: Path) -> str | None:
    """Write the class archive of a small Spark job to ``archive``; None, or why it was not written."""
    environment = dict(os.environ)
    with_test_jvm_options(environment, f"-XX:ArchiveClassesAtExit={archive}")
    result = subprocess.run([sys.executable, "-c", ARCHIVE_JOB], env=environment, capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0 or not archive.is_file():
        return f"exit code {result.returncode}, {archive.name} not written: {result.stderr.strip()[-500:]}"
    return None
