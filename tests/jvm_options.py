"""The options of every JVM the test suite starts, in one place: conftest.py applies them to the
run's environment, tests/test_spark_session.py checks that they reach the JVM, and
benchmarks/bench_test_jvm.py measures what they save.

The suite's JVMs (its Spark session, each job process's, each Spark Connect server) live seconds
to minutes on small data. On two cores the suite is CPU-bound, and such a JVM spends about half
of its CPU in the optimising JIT compiler and the parallel collector's threads
(benchmarks/bench_test_jvm.py: 0.50-0.55x the CPU seconds without them); the first JIT tier and
the serial collector change no result. spark-submit puts ``SPARK_SUBMIT_OPTS`` on the
command line of every JVM it starts (pyspark's session and the Connect server start theirs
through it).
"""

from __future__ import annotations

from collections.abc import MutableMapping

SUBMIT_OPTS_ENV = "SPARK_SUBMIT_OPTS"
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def with_test_jvm_options(environment: MutableMapping[str, str]) -> None:
    """Add TEST_JVM_OPTIONS to ``environment``'s SPARK_SUBMIT_OPTS once, after the caller's own."""
    current = environment.get(SUBMIT_OPTS_ENV, "")
    if TEST_JVM_OPTIONS not in current:
        environment[SUBMIT_OPTS_ENV] = f"{current} {TEST_JVM_OPTIONS}".strip()
