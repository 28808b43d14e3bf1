"""Shared fixtures: one Spark session for the whole run, and a fresh local home per test.

Which tests are slow (and the fast suite's guard) is decided in slow_tests.py, whose hooks this
file re-exports so they apply to every run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from healthcare_mlops.composition import build_runtime, cli_runtime
from healthcare_mlops.settings import resolve_settings
from jvm_options import with_test_jvm_options
from slow_tests import pytest_collection_modifyitems, pytest_configure, pytest_runtestloop  # noqa: F401

os.environ.setdefault("HEALTHCARE_MLOPS_SHUFFLE_PARTITIONS", "4")
# One session per mode per run: the suite's Spark (in process, and the jobs its tests start) is
# classic; tests/test_spark_connect.py runs every job under Spark Connect, in its own processes.
os.environ.setdefault("HEALTHCARE_MLOPS_SPARK_API", "classic")
with_test_jvm_options(os.environ)      # the first JIT tier and the serial collector: jvm_options.py


@pytest.fixture(scope="session")
def spark():
    """The suite's in-process session: classic (see HEALTHCARE_MLOPS_SPARK_API above)."""
    from healthcare_mlops.runtime.spark_session import get_spark

    session = get_spark(api="classic")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty local runtime root, also exported for subprocesses (CLI, runner)."""
    root = tmp_path / "lakehouse"
    monkeypatch.setenv("HEALTHCARE_MLOPS_HOME", str(root))
    return root


@pytest.fixture
def settings(home):
    return resolve_settings("local", home)


PIPELINE_AS_OF = "2026-01-01"
PIPELINE_MEMBERS = 20000
XDIST_WORKER_ENV = "PYTEST_XDIST_WORKER"      # set in each xdist worker


def build_pipeline_home(root: Path) -> None:
    """The real pipeline steps into ``root``: data, features, a trained and promoted champion."""
    import datetime as dt

    from healthcare_mlops.tasks.load_members import generate_patients
    from healthcare_mlops.tasks import feature_engineering, model_governance, model_training

    settings = resolve_settings("local", root)
    as_of = dt.date.fromisoformat(PIPELINE_AS_OF)
    generate_patients(cli_runtime(settings), PIPELINE_MEMBERS, 42, as_of)
    feature_engineering.run(build_runtime(settings), as_of)
    model_training.run(build_runtime(settings), as_of, candidates=("hist_gradient_boosting_poisson",))
    assert model_governance.run(build_runtime(settings)) == model_governance.PROMOTED


@contextmanager
def exclusive(lock_file: Path):
    """Held by one process at a time (an OS file lock, released if the holder dies)."""
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def pipeline_home(spark, tmp_path_factory):
    """A lakehouse built by the real pipeline steps: data, features, a trained and promoted champion.

    Session-scoped and read-only: a test that writes copies it first (``copy_home``).
    20,000 members keep the per-group fairness checks out of small-sample noise. Under xdist the
    workers share one build (minutes of a run): the first worker that needs it builds it in the
    run's shared temporary folder while the others wait on a lock, then all read the same home.
    """
    if XDIST_WORKER_ENV not in os.environ:
        root = tmp_path_factory.mktemp("pipeline") / "lakehouse"
        build_pipeline_home(root)
        return root
    shared = tmp_path_factory.getbasetemp().parent / "pipeline"      # the run's folder, all workers'
    shared.mkdir(exist_ok=True)
    root, built = shared / "lakehouse", shared / "built"
    with exclusive(shared / "lock"):
        if not built.exists():
            shutil.rmtree(root, ignore_errors=True)       # a worker's build that failed midway
            build_pipeline_home(root)
            built.touch()
    return root


@pytest.fixture
def private_home(tmp_path, monkeypatch):
    """``private_home(source)``: a writable copy of a shared lakehouse for this test, made the home.

    MLflow artifacts stay where the source's runs logged them (shared, read-only)."""
    def copy(source: Path) -> Path:
        target = tmp_path / "lakehouse"
        shutil.copytree(source, target)
        monkeypatch.setenv("HEALTHCARE_MLOPS_HOME", str(target))
        return target

    return copy


@pytest.fixture
def copy_home(pipeline_home, private_home):
    """A private, writable copy of ``pipeline_home``."""
    return private_home(pipeline_home)
