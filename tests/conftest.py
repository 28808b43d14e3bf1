"""Shared fixtures: one Spark session for the whole run, and a fresh local home per test."""

from __future__ import annotations

import os

import pytest

from healthcare_mlops.settings import resolve_settings

os.environ.setdefault("HEALTHCARE_MLOPS_SHUFFLE_PARTITIONS", "4")


@pytest.fixture(scope="session")
def spark():
    from healthcare_mlops.spark.session import get_spark

    session = get_spark()
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
