"""The fast suite (``pytest -m "not slow"``) never starts Spark or another process.

The marking and the guard live in slow_tests.py; here they run on a small suite of their own
(pytester, in this process), and on this run's own collected tests.
"""

from __future__ import annotations

import pytest

from jvm_options import SUBMIT_OPTS_ENV, TEST_JVM_OPTIONS, with_test_jvm_options
from slow_tests import GUARD_MESSAGE, LONGEST_FILES, is_fast_run, longest_first, needs_slow_fixture

pytest_plugins = ["pytester"]

SUITE = '''
import subprocess

import pytest


@pytest.fixture(scope="session")
def spark():
    subprocess.run(["true"], check=True)        # stands in for the JVM a real session launches
    return "session"


@pytest.fixture
def features(spark):                            # Spark through another fixture
    return spark


@pytest.fixture
def spark_connect():                            # a new fixture whose name says Spark
    subprocess.run(["true"], check=True)
    return "remote"


def test_uses_spark(spark):
    assert spark == "session"


def test_uses_spark_indirectly(features):
    assert features == "session"


def test_uses_spark_connect(spark_connect):
    assert spark_connect == "remote"


def test_starts_a_process_unmarked():
    subprocess.run(["true"], check=True)


@pytest.mark.slow
def test_starts_a_process_marked():
    subprocess.run(["true"], check=True)


def test_in_memory():
    assert sum([1, 2]) == 3
'''


def test_the_fast_suite_leaves_out_spark_and_stops_an_unmarked_process(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("-p", "slow_tests", "-m", "not slow", "-q")
    result.assert_outcomes(passed=1, failed=1, deselected=4)
    result.stdout.fnmatch_lines([f"*{GUARD_MESSAGE}*'true'*Mark the test slow*"])
    assert "test_starts_a_process_unmarked" in result.stdout.str()


def test_the_slow_suite_holds_every_spark_test(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("-p", "slow_tests", "-m", "slow", "--collect-only", "-q")
    selected = {line.split("::")[-1] for line in result.stdout.lines if "::" in line}
    assert selected == {"test_uses_spark", "test_uses_spark_indirectly", "test_uses_spark_connect",
                        "test_starts_a_process_marked"}


@pytest.mark.parametrize("expression, fast", [("not slow", True), ("not slow and not browser", True),
                                               ("slow", False), ("", False), ("slow or not slow", False)])
def test_which_runs_are_fast(pytester, expression, fast):
    config = pytester.parseconfig("-p", "slow_tests", *(["-m", expression] if expression else []))
    assert is_fast_run(config) is fast


def test_no_test_of_this_run_needs_spark_unless_marked_slow(request):
    """Every collected test of this very run: one that needs Spark or the pipeline carries ``slow``
    (in the fast suite, none such is even selected)."""
    unmarked = [item.nodeid for item in request.session.items
                if needs_slow_fixture(getattr(item, "fixturenames", ())) and item.get_closest_marker("slow") is None]
    assert unmarked == []
    if is_fast_run(request.config):
        assert not [item.nodeid for item in request.session.items if item.get_closest_marker("slow")]


def test_the_longest_files_are_handed_out_first(request):
    """A renamed file would silently drop out of LONGEST_FILES; and this run's items follow the order."""
    from pathlib import Path

    assert all((Path(__file__).parent / name).is_file() for name in LONGEST_FILES)
    ranks = [longest_first(item) for item in request.session.items]
    assert ranks == sorted(ranks)
    # xdist hands the files out in that order only without its own reorder (most tests first).
    quickstart = (Path(__file__).parents[1] / "quickstart").read_text()
    assert "--dist loadfile" in quickstart and "--no-loadscope-reorder" in quickstart
    controller_argv = getattr(request.config, "workerinput", {}).get("mainargv", [])   # an xdist worker's run
    if "loadfile" in controller_argv:                                                  # ./quickstart test
        assert "--no-loadscope-reorder" in controller_argv


@pytest.mark.parametrize("before, after", [
    ({}, TEST_JVM_OPTIONS),
    ({SUBMIT_OPTS_ENV: "-Xmx2g"}, f"-Xmx2g {TEST_JVM_OPTIONS}"),               # the caller's own options first
    ({SUBMIT_OPTS_ENV: f"-Xmx2g {TEST_JVM_OPTIONS}"}, f"-Xmx2g {TEST_JVM_OPTIONS}"),   # once (xdist workers inherit)
])
def test_the_suite_s_jvm_options_are_added_once_after_the_caller_s(before, after):
    environment = dict(before)
    with_test_jvm_options(environment)
    with_test_jvm_options(environment)
    assert environment == {SUBMIT_OPTS_ENV: after}
