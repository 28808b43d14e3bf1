"""Serverless jobs run Spark through Spark Connect; so do the jobs here (runtime/spark_session.py).

Every job runs once under a local Spark Connect server (the run's one server), each task in
its own process as the runner runs it, a client of that server, and its tables equal the
classic session's on the same inputs. What
serverless environment 2 refuses fails locally too: caching and checkpoints by the local
Connect session's guard, ``sparkContext``/RDDs/``_jvm`` by the Connect client itself, and
job code that reaches for any of them by the static check below.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from healthcare_mlops.runtime.spark_session import CONNECT_REFUSED, SPARK_API_ENV, SPARK_REMOTE_ENV
from healthcare_mlops.settings import HOME_ENV, resolve_settings
from healthcare_mlops.tables import (DIM_PATIENTS, JOB_RUNS, ML_INSURANCE_FEATURES,
                                     ML_PATIENT_PREDICTIONS, SILVER_PATIENTS)

from in_process_tasks import tasks_in_this_process

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "healthcare_mlops"
CLI = [sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()"]

# -- the static check: job code names nothing serverless lacks -----------------------------------
# Spark's classic-only surface, and what environment 2 refuses (CONNECT_REFUSED).
CLASSIC_ONLY_ATTRIBUTES = {"sparkContext", "_jvm", "_jsc", "_jdf", "_jsparkSession", "_sc", "rdd", "unpersist",
                           *(attribute for _owner, attribute in CONNECT_REFUSED)}
CLASSIC_ONLY_MODULES = ("pyspark.rdd", "pyspark.broadcast", "pyspark.context")
CLASSIC_ONLY_NAMES = {"SparkContext", "RDD", "Broadcast"}
# The local launchers start the JVM that hosts the Connect server: they are no job's code.
LOCAL_LAUNCHERS = {PACKAGE / "runtime" / "spark_session.py", PACKAGE / "runtime" / "connect_server.py"}


def classic_only_uses(tree: ast.AST) -> list[str]:
    """What ``tree`` names of Spark's classic-only surface (attributes, imports)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in CLASSIC_ONLY_ATTRIBUTES:
            found.append(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(CLASSIC_ONLY_MODULES):
                found.append(node.module)
            found += [alias.name for alias in node.names if alias.name in CLASSIC_ONLY_NAMES]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith(CLASSIC_ONLY_MODULES)]
    return found


def job_code() -> list[Path]:
    """Every module a job task may run: the package (but the console-only parts) and jobs/."""
    package = [path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] != "cli"]
    return sorted(path for path in [*package, *(REPO / "jobs").glob("*.py")] if path not in LOCAL_LAUNCHERS)


def test_job_code_uses_nothing_a_serverless_environment_lacks():
    found = {(path.relative_to(PACKAGE if PACKAGE in path.parents else REPO).as_posix(), name)
             for path in job_code() for name in classic_only_uses(ast.parse(path.read_text()))}
    assert found == set(), "job code uses what Spark Connect on serverless lacks"


@pytest.mark.parametrize("snippet, expected", [
    ("frame = frame.cache()", "cache"),
    ("frame.persist()", "persist"),
    ("frame = frame.localCheckpoint()", "localCheckpoint"),
    ("spark.catalog.cacheTable('t')", "cacheTable"),
    ("n = spark.sparkContext.defaultParallelism", "sparkContext"),
    ("rows = frame.rdd.map(len)", "rdd"),
    ("spark._jvm.System.gc()", "_jvm"),
    ("from pyspark import SparkContext", "SparkContext"),
    ("from pyspark.broadcast import Broadcast", "pyspark.broadcast"),
])
def test_the_static_check_finds_each_classic_only_use(snippet, expected):
    assert expected in classic_only_uses(ast.parse(snippet))
    assert classic_only_uses(ast.parse("frame = frame.where('x > 1').select('x')")) == []


# -- the Connect session refuses what serverless refuses -------------------------------------------
def _python(script: str, api: str = "connect", home: Path | None = None,
            remote: str | None = None) -> subprocess.CompletedProcess:
    """``script`` in its own Python process, Spark through ``api``: a client of the Connect server at
    ``remote``, or of one in a JVM of its own."""
    env = {**os.environ, SPARK_API_ENV: api, **({HOME_ENV: str(home)} if home else {}),
           **({SPARK_REMOTE_ENV: remote} if remote else {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          env=env, cwd=str(REPO), timeout=300)


@pytest.fixture(scope="module")
def spark_connect_server(tmp_path_factory):
    """One Spark Connect server for the job processes below, started as the runner starts a run's
    (emulator/spark_server.py), its ``sc://`` address: each process is its client, as a run's task
    is, instead of starting a JVM of its own (the local session's own JVM is tested above)."""
    from healthcare_mlops.emulator.spark_server import RunSparkServer

    with pytest.MonkeyPatch.context() as patch:            # the suite's processes run classic Spark
        patch.setenv(SPARK_API_ENV, "connect")
        server = RunSparkServer(REPO, dict(os.environ), tmp_path_factory.mktemp("connect-server"), echo=False,
                                say=lambda _line: None)
    try:
        yield server.task_env()[SPARK_REMOTE_ENV]
    finally:
        server.stop()


@pytest.mark.slow      # a Spark Connect server in a subprocess
def test_a_local_connect_session_is_a_connect_client_that_refuses_what_serverless_refuses():
    result = _python("""
        from pyspark.sql import SparkSession
        from healthcare_mlops.runtime.spark_session import get_spark

        spark = get_spark()
        print(type(spark).__module__, SparkSession.getActiveSession() is spark, get_spark() is spark)
        print(spark.conf.get("spark.sql.session.timeZone"), spark.range(5).count())
        frame = spark.range(3)
        attempts = {"cache": frame.cache, "persist": frame.persist, "localCheckpoint": frame.localCheckpoint,
                    "cacheTable": lambda: spark.catalog.cacheTable("t"),
                    "sparkContext": lambda: spark.sparkContext, "rdd": lambda: frame.rdd,
                    "_jvm": lambda: spark._jvm}
        for name, attempt in attempts.items():
            try:
                attempt()
                print(name, "ALLOWED")
            except Exception as exc:
                print(name, type(exc).__name__, str(exc).splitlines()[0][:90])
        """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pyspark.sql.connect.session True True"
    assert lines[1] == "UTC 5"
    refused = dict(line.split(" ", 1) for line in lines[2:])
    assert "ALLOWED" not in " ".join(refused.values()), refused
    for name in ("cache", "persist", "localCheckpoint", "cacheTable"):
        assert refused[name].startswith("ServerlessUnsupported [NOT_SUPPORTED_WITH_SERVERLESS]"), refused[name]
    assert "PERSIST TABLE" in refused["cache"]
    assert "incubator" not in result.stderr


@pytest.mark.slow      # load_members in a subprocess, under Spark Connect
@pytest.mark.parametrize("added, error", [
    ("pass", None),                   # the harness itself: the job as it is loads its members
    ("records = records.cache()", "[NOT_SUPPORTED_WITH_SERVERLESS] PERSIST TABLE"),
    ("records.sparkSession.sparkContext.setJobDescription('load')", "JVM_ATTRIBUTE_NOT_SUPPORTED"),
])
def test_a_cache_or_a_spark_context_added_to_a_job_fails_it_under_spark_connect(added, error, tmp_path,
                                                                                  spark_connect_server):
    """load_members with one line added to its validation step: the job exits non-zero naming the cause.
    The job's process is a client of the module's one server (the refusals are the client's)."""
    settings = resolve_settings("local", tmp_path / "lakehouse")
    result = _python(f"""
        import runpy, sys
        import healthcare_mlops.spark.patient_load as patient_load

        validate = patient_load.validate
        def validate_with_addition(records, *args, **kwargs):
            {added}
            return validate(records, *args, **kwargs)
        patient_load.validate = validate_with_addition
        sys.argv = ["load_members.py", "--target", "local", "--catalog", "{settings.catalog}",
                    "--schema", "{settings.schema}", "--source", "synthetic", "--patients", "200",
                    "--seed", "42", "--scenario", "baseline", "--as_of", "2026-01-01", "--replace", "false"]
        runpy.run_path("jobs/load_members.py", run_name="__main__")
        """, home=settings.home, remote=spark_connect_server)
    if error is None:
        assert result.returncode == 0, result.stderr[-2000:]
        assert "loaded 200" in result.stdout
    else:
        assert result.returncode != 0
        assert error in result.stderr, result.stderr[-2000:]


# -- every job under Spark Connect, and the same tables as classic ----------------------------------
LOOP_MEMBERS = 2000
LOOP_DAY = "2026-01-01"
# The loop's jobs in order, each with its parameters: every job of the bundle runs once
# (ml_training_pipeline runs feature_engineering, model_training and model_governance's tasks).
LOOP = (
    ("load_members", {"source": "synthetic", "patients": str(LOOP_MEMBERS), "as_of": LOOP_DAY}),
    ("ml_training_pipeline", {"as_of": LOOP_DAY, "scoring_date": LOOP_DAY}),
    ("batch_inference", {"scoring_date": LOOP_DAY, "mode": "production"}),
    ("model_monitoring", {"window_start": LOOP_DAY, "window_end": LOOP_DAY}),
    ("model_reproduction", {}),
)
# What differs between two runs of the same loop: when and under which run or event id.
RUN_TABLES = {JOB_RUNS}
RUN_ID = r"\b(\d{13,}|[0-9a-f]{32})\b"        # a job run's id, an MLflow run's id


def loop_commands(home: Path) -> list[list[str]]:
    """LOOP as ``healthcare-mlops`` commands: ``jobs run`` of each job with its parameters."""
    return [["--home", str(home), "jobs", "run", job,
             *[part for name, value in params.items() for part in ("--param", f"{name}={value}")]]
            for job, params in LOOP]


def run_loop(home: Path, api: str, environment: dict[str, str]) -> None:
    """LOOP as a user runs it: each ``jobs run`` in its own process, each task in its own, in
    ``environment`` (taken before the in-process loop starts patching this process's)."""
    for command in loop_commands(home):
        result = subprocess.run([*CLI, *command], capture_output=True, text=True, cwd=str(REPO), timeout=900,
                                env={**environment, SPARK_API_ENV: api, HOME_ENV: str(home)})
        assert result.returncode == 0, f"{command[3:5]} under {api}: {result.stderr[-3000:]}"


def run_loop_in_this_process(home: Path, monkeypatch) -> None:
    """The same ``jobs run`` commands (the CLI's audit row, the runner's plan, parameters, run history
    and audit rows) in this process, each task too (tests/in_process_tasks.py): the classic reference
    without a process and a JVM start per task, minutes of the suite."""
    from typer.testing import CliRunner

    from healthcare_mlops.cli.main import app

    tasks_in_this_process(monkeypatch)
    monkeypatch.setenv(HOME_ENV, str(home))
    for command in loop_commands(home):
        result = CliRunner().invoke(app, command)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == 0, f"{command[3:5]} in this process: {result.output[-3000:]}"


def comparable_tables(home: Path) -> dict:
    """Every table of the home but the runner's, as sorted rows without run-specific columns."""
    import pyarrow as pa
    from deltalake import DeltaTable

    tables = {}
    for folder in sorted((home / "tables").glob("*/*/*")):
        if folder.name in RUN_TABLES or not folder.is_dir():      # a table's lock file sits beside it
            continue
        arrow = DeltaTable(str(folder)).to_pyarrow_table()
        kept = [f.name for f in arrow.schema
                if not (pa.types.is_timestamp(f.type) or f.name.endswith(("_id", "_at", "_time")))]
        frame = arrow.select(kept).to_pandas()
        for column in kept:                      # run ids quoted in texts (the audit's comments)
            if pa.types.is_string(arrow.schema.field(column).type):
                frame[column] = frame[column].str.replace(RUN_ID, "<run id>", regex=True)
        tables[folder.name] = frame.sort_values(kept).reset_index(drop=True) if kept else frame
    return tables


def test_every_job_runs_under_spark_connect_and_makes_the_tables_classic_spark_makes(spark, tmp_path,
                                                                                      monkeypatch):
    """The Connect loop runs as a user runs it (processes); the classic reference runs the same jobs
    through the same runner on the suite's classic session (``spark``), in this process. The two
    loops run at the same time (the Connect loop's processes waited on from a thread): apart, they
    were the suite's longest test."""
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    with ThreadPoolExecutor(max_workers=1) as background:
        connect_loop = background.submit(run_loop, tmp_path / "connect", "connect", dict(os.environ))
        run_loop_in_this_process(tmp_path / "classic", monkeypatch)
        connect_loop.result()
    connect, classic = comparable_tables(tmp_path / "connect"), comparable_tables(tmp_path / "classic")
    assert sorted(connect) == sorted(classic)
    for name in (SILVER_PATIENTS, DIM_PATIENTS, ML_INSURANCE_FEATURES, ML_PATIENT_PREDICTIONS):
        assert len(connect[name]) == LOOP_MEMBERS, name
    for name in connect:      # the quarantine, fairness and alerts may be empty on one clean day
        pd.testing.assert_frame_equal(connect[name], classic[name], obj=name)
