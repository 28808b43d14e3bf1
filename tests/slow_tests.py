"""Which tests are slow, decided in one place, and the guard that keeps the fast suite fast.

A test is slow when it needs Spark, the 20,000-member pipeline, another process (the CLI, a job
script, a server, a browser) or real MLflow. The fixtures that bring Spark or the pipeline mark
every test that uses them, directly or through another fixture (``item.fixturenames`` is the
closure), so a new Spark test cannot land in the fast suite by accident; a test that starts a
process without such a fixture carries ``@pytest.mark.slow`` (or its module a ``pytestmark``).

``pytest -m "not slow"`` (the fast suite) also runs with a guard: starting any process (a JVM
for Spark or Spark Connect, a server, a browser, a subprocess) raises, so a test that was
missed fails loudly instead of making the fast suite slow; and the run fails if a Spark
context is alive at its end.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from contextlib import contextmanager

import joblib
import pytest
from _pytest.mark.expression import Expression

# Fixtures (by name) that start Spark or build the pipeline; any fixture whose name says
# "spark" too (a Spark Connect session, a second session, ...).
SLOW_FIXTURES = frozenset({"spark", "pipeline_home", "copy_home"})
SLOW_FIXTURE_WORDS = ("spark",)
GUARD_MESSAGE = "the fast suite (-m 'not slow') started a process"
# The one process the fast suite may start: git, which the bundle resolver asks for the checkout's
# commit and branch (``${bundle.git.*}``, cached per checkout; milliseconds).
ALLOWED_COMMANDS = frozenset({"git"})


def needs_slow_fixture(fixturenames) -> list[str]:
    """The slow fixtures among a test's (transitive) fixtures."""
    return sorted(name for name in fixturenames
                  if name in SLOW_FIXTURES or any(word in name for word in SLOW_FIXTURE_WORDS))


def is_fast_run(config: pytest.Config) -> bool:
    """True when the run's ``-m`` expression leaves out a test marked only ``slow``."""
    expression = config.getoption("markexpr", "") or ""
    if not expression.strip():
        return False
    return not Expression.compile(expression).evaluate(lambda name, **_: name == "slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: needs Spark, the pipeline, another process, a browser or real "
                                       "MLflow (left out by the fast suite: -m 'not slow')")


# The test files that take longest (a fresh clone's full run, per-file sum of its tests' times from
# ``--junitxml``: 337 s down to 38 s), longest first: they are handed out first, so that with two xdist
# workers (a file per worker: ``./quickstart test``) neither worker is left alone with one of them at the
# end. The order holds only with ``--no-loadscope-reorder`` (quickstart passes it): by default xdist hands
# out the files with the most tests first, which put test_spark_connect.py at 70 % of a run.
# test_monitoring.py stays first: it builds the shared pipeline home while the other worker runs the
# Connect loop, which needs none.
LONGEST_FILES = ("test_monitoring.py", "test_spark_connect.py", "test_console_pages.py", "test_console_browser.py",
                 "test_spark_server.py", "test_batch_inference.py", "test_governance.py", "test_security_console.py",
                 "test_security_ingest.py", "test_training.py", "test_features.py", "test_champion_moves.py",
                 "test_cli.py")


def longest_first(item: pytest.Item) -> int:
    """The item's file's place in LONGEST_FILES (the others after them, in their order)."""
    name = item.path.name
    return LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if needs_slow_fixture(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    items.sort(key=longest_first)       # stable: each file's tests keep their order


@contextmanager
def no_new_processes():
    """Every ``subprocess.Popen`` (which ``subprocess.run``, asyncio, py4j's JVM launch and
    Playwright's driver go through) raises instead of starting a process, but for git."""
    original = subprocess.Popen._execute_child

    def refuse(self, args, *rest, **kwargs):
        if isinstance(args, (list, tuple)) and args and args[0] in ALLOWED_COMMANDS:
            return original(self, args, *rest, **kwargs)
        raise RuntimeError(f"{GUARD_MESSAGE}: {args!r}. Mark the test slow (tests/slow_tests.py)")

    subprocess.Popen._execute_child = refuse
    try:
        yield
    finally:
        subprocess.Popen._execute_child = original


def spark_is_running() -> bool:
    context = getattr(sys.modules.get("pyspark"), "SparkContext", None)
    return context is not None and context._active_spark_context is not None


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session):
    if not is_fast_run(session.config):
        return (yield)
    # platform.processor() runs `uname -p` once per process and caches it; whichever test first
    # builds an SDK or MLflow user agent would pay it, so it is paid here, before the guard.
    platform.processor()
    # joblib counts the physical cores (lscpu, /proc/cpuinfo) once per process, when an estimator
    # first asks; paid here too, or the guard's refusal turns into joblib's warning.
    joblib.cpu_count(only_physical_cores=True)
    with no_new_processes():
        result = yield
    if spark_is_running():
        raise pytest.UsageError("the fast suite started Spark: a test that needs it is not marked slow")
    return result
