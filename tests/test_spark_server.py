"""One local Spark Connect server per job run (emulator/spark_server.py), its tasks its clients.

Each test runs a small fixture bundle whose tasks are Spark Connect clients and report
what their session sees; the runner runs under ``connect`` here (the suite's default is
``classic``). What a server shared by a run's task processes must not share: session conf
and temp views (each client is its own session); what it must not leave behind: its JVM,
when the run ends, when a task is timed out, and when the runner is killed outright.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.emulator.run_guard import MARKER_DIR, reconcile
from healthcare_mlops.emulator.runner import run_job
from healthcare_mlops.emulator.spark_server import SERVER_LOG
from healthcare_mlops.runtime.spark_session import CONNECT_MODE_ENV, SPARK_API_ENV, SPARK_REMOTE_ENV
from healthcare_mlops.settings import HOME_ENV, resolve_settings

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "bundles" / "connect"
SERVER_LINE = re.compile(r"spark connect server on localhost:(\d+) \(pid (\d+)\)")
GONE_SECONDS = 60


def _reports(result) -> dict:
    """Each task's JSON report (its log's last line starting with '{')."""
    return {task.task_key: json.loads([line for line in task.log_path.read_text().splitlines()
                                       if line.startswith("{")][-1])
            for task in result.tasks if task.status == "SUCCEEDED"}


def _group_gone(pgid: int, seconds: float = GONE_SECONDS) -> bool:
    """True once no process of group ``pgid`` is left (waiting up to ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


@pytest.fixture
def connect(monkeypatch):
    monkeypatch.setenv(SPARK_API_ENV, "connect")
    monkeypatch.delenv(SPARK_REMOTE_ENV, raising=False)


@pytest.mark.slow      # a Spark Connect server and two client tasks, each a process
def test_a_run_s_tasks_share_one_server_but_not_their_sessions(connect, home, capfd):
    result = run_job("shared", bundle=load_bundle(FIXTURE), home=home)
    output = capfd.readouterr().out
    assert result.succeeded, result.error
    servers = SERVER_LINE.findall(output)
    assert len(servers) == 1, output                           # one server for both tasks
    first, second = _reports(result)["first"], _reports(result)["second"]
    for report in (first, second):
        assert report["remote"] and not report["jvm_here"]     # a Connect client, no JVM of its own
        assert report["worker_python"] == sys.executable       # workers run the server's interpreter ...
        assert report["worker_probe"] == ""                    # ... with the server's environment
    assert first["session_id"] != second["session_id"]
    assert first["partitions"] == "3" and first["view"]
    assert second["partitions"] == os.environ.get("HEALTHCARE_MLOPS_SHUFFLE_PARTITIONS", "8")   # no leak
    assert not second["view"]
    assert _group_gone(int(servers[0][1]))                     # stopped with the run
    assert (result.task("first").log_path.parent / SERVER_LOG).exists()


@pytest.mark.slow      # a Spark Connect server and two client tasks, each a process
def test_a_run_started_from_a_connect_client_s_process_gets_its_own_server(connect, home, monkeypatch):
    """Monitoring's retrain starts a run from a task that is itself a Connect client: pyspark's
    client flag in its environment must not reach the new run's server (its JVM would refuse)."""
    monkeypatch.setenv(CONNECT_MODE_ENV, "1")
    result = run_job("shared", bundle=load_bundle(FIXTURE), home=home)
    assert result.succeeded, result.error


@pytest.mark.slow      # a task timed out while it queries the server
def test_a_timed_out_task_s_server_is_replaced_and_none_is_left(connect, home, capfd):
    result = run_job("stuck", bundle=load_bundle(FIXTURE), home=home)
    output = capfd.readouterr().out
    assert result.task("hold").status == "TIMED_OUT"
    assert "ready" in result.task("hold").log_path.read_text().splitlines()    # timed out while it queried
    assert result.task("after").status == "SUCCEEDED", result.task("after").error
    servers = SERVER_LINE.findall(output)
    assert len(servers) == 2, output        # the timed-out task's server went with it; "after" got a new one
    assert all(_group_gone(int(pid)) for _port, pid in servers)


@pytest.mark.slow      # a runner process killed with SIGKILL while its task queries the server
def test_a_killed_runner_leaves_no_server(home):
    script = ("import sys\nfrom healthcare_mlops.emulator.runner import run_job\n"
              f"run_job('stuck', bundle_root={str(FIXTURE)!r}, home={str(home)!r})\n")
    env = {**os.environ, SPARK_API_ENV: "connect", HOME_ENV: str(home), "PYTHONUNBUFFERED": "1"}
    env.pop(SPARK_REMOTE_ENV, None)
    runner = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    server, ready = None, False
    try:
        for line in runner.stdout:
            server = server or SERVER_LINE.search(line)
            if "[hold] ready" in line:
                ready = True
                break
        assert server is not None, "the runner started no server"
        assert ready, "the task did not start querying before its timeout_seconds"
        runner.kill()                 # SIGKILL: no clean-up in the runner
        runner.wait()
        assert _group_gone(int(server.group(2)))
        # The task, a Connect client of the server that went, is the orphan the next runner start ends
        # (run_guard.reconcile); left alone it retries its connection for minutes.
        [marker] = [json.loads(path.read_text()) for path in (Path(home) / MARKER_DIR).glob("*.json")]
        assert reconcile(resolve_settings("local", home)) == [marker["run_id"]]
        assert _group_gone(marker["task"]["pgid"], seconds=10)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        runner.stdout.close()


@pytest.mark.slow      # get_spark in its own process
def test_a_remote_that_is_no_spark_connect_address_is_refused():
    script = "from healthcare_mlops.runtime.spark_session import get_spark\nget_spark()\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, SPARK_API_ENV: "connect",
                                 SPARK_REMOTE_ENV: "http://example.invalid:15002"})
    assert result.returncode != 0
    assert f"{SPARK_REMOTE_ENV}: expected a Spark Connect address" in result.stderr


@pytest.mark.slow      # a server process whose JVM cannot start
def test_a_server_that_cannot_start_fails_the_task_naming_why(connect, home, monkeypatch):
    monkeypatch.setenv("HEALTHCARE_MLOPS_DRIVER_MEMORY", "lots")       # no JVM starts with -Xmx lots
    result = run_job("shared", bundle=load_bundle(FIXTURE), home=home, echo=False)
    assert not result.succeeded
    first = result.task("first")
    assert first.status == "FAILED" and first.exit_code is None
    head = first.error.splitlines()[0]
    assert head.startswith("the local Spark Connect server did not start (exit code 1): "), first.error
    assert "JAVA_GATEWAY_EXITED" in head, first.error                 # the cause first, then its traceback
    assert result.task("second").status == "UPSTREAM_FAILED"
