"""The local Spark session as a job meets it: its log on stderr."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow   # a Spark job in a subprocess


def test_a_local_spark_job_prints_spark_warnings_but_not_the_jdk_incubator_notice():
    """The JDK's 'Using incubator modules' line (Spark's launcher always adds the module) is
    the one line of the JVM's stderr the local session drops; Spark's own warnings still show."""
    script = ("from healthcare_mlops.runtime.spark_session import get_spark\n"
              "s = get_spark(api='classic')\n"
              "s.sparkContext._jvm.org.apache.logging.log4j.LogManager.getLogger('check').warn('still relayed')\n"
              "print(s.range(3).count())\n"
              "import time; time.sleep(1)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"
    assert "WARN check: still relayed" in result.stderr
    assert "incubator" not in result.stderr


def test_the_suite_s_jvms_get_its_jit_and_collector_options(spark):
    """jvm_options.py's options reach the JVM spark-submit starts (the suite's session here; each job
    process and Connect server inherits the same environment)."""
    from jvm_options import TEST_JVM_OPTIONS

    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    assert set(TEST_JVM_OPTIONS.split()) <= set(runtime.getInputArguments())
