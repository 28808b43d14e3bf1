"""One local Spark Connect server for a whole job run, its tasks its clients.

On serverless the compute is up before a task starts and the task is only a Spark Connect
client; locally, a task that started its own JVM paid a JVM start-up per task. So under
``$HEALTHCARE_MLOPS_SPARK_API=connect`` the runner starts one server process
(``runtime/connect_server.py``: a JVM on a free loopback port, with a token) when the
run's first task starts, hands its address to every task in
``$HEALTHCARE_MLOPS_SPARK_REMOTE``, and stops it when the run ends, however it ends.

Per run, not per runner: a runner process runs one job (the CLI, the console's background
run), and the test suite runs many in one process; a run's server holds nothing of another
run. After a task that did not succeed (failed, timed out, killed) the server is stopped
and the next task starts a new one, so no query of an ended task keeps running beside it.
The server's own output (Spark's warnings) goes to ``spark-connect-server.log`` beside
the tasks' logs, and to the console with the tasks' output.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
from pathlib import Path

from healthcare_mlops.emulator import run_guard
from healthcare_mlops.emulator.task_process import ERROR_TAIL_LINES, Pump
from healthcare_mlops.runtime.spark_session import CONNECT_MODE_ENV, SPARK_REMOTE_ENV, spark_api

SERVER_COMMAND = (sys.executable, "-m", "healthcare_mlops.runtime.connect_server")
SERVER_LOG = "spark-connect-server.log"
STOP_SECONDS = 30.0        # the server's time to stop Spark after its stdin closes


class SparkServerFailed(RuntimeError):
    """The run's Spark Connect server did not start (its last output lines say why)."""


class RunSparkServer:
    """The run's server under ``connect``: started on first use (``task_env``), stopped by ``stop``;
    under ``classic`` there is none and both do nothing."""

    def __init__(self, cwd: Path, env: dict, log_dir: Path, echo: bool, say):
        """``env``: the tasks' environment. Its own server address and pyspark's Connect-client flag, if
        any, are dropped: a run started from a Connect client's process (monitoring's retrain) would
        hand them to the server, whose JVM then refuses to start ("Remote client cannot create a
        SparkContext")."""
        self.env = {name: value for name, value in env.items() if name not in (SPARK_REMOTE_ENV, CONNECT_MODE_ENV)}
        self.cwd, self.log_path, self.echo, self.say = cwd, log_dir / SERVER_LOG, echo, say
        self.enabled = spark_api() == "connect"
        self.process: subprocess.Popen | None = None
        self._address = ""
        self._log = None
        self._pump: Pump | None = None

    def task_env(self) -> dict:
        """What a task's environment adds: the running server's ``sc://`` address (starting the
        server if none runs), or nothing under ``classic``."""
        if not self.enabled:
            return {}
        if self.process is None:
            self._start()
        return {SPARK_REMOTE_ENV: self._address}

    def _start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8")
        # stdin is the server's lifeline: it serves until the pipe closes (see the module docstring).
        self.process = subprocess.Popen(SERVER_COMMAND, cwd=str(self.cwd), env=self.env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                        errors="replace", start_new_session=True)
        tail: collections.deque = collections.deque(maxlen=ERROR_TAIL_LINES)
        self._pump = Pump(self.process.stderr, self._log, threading.Lock(), sys.stderr if self.echo else None,
                          "[spark-connect-server] ", tail)
        self._pump.start()
        address = self.process.stdout.readline().strip()
        if not address.startswith("sc://"):
            code = self._exit_code()
            self.stop()
            lines = list(tail) or ["(no output on stderr)"]
            raise SparkServerFailed(f"the local Spark Connect server did not start (exit code {code}): "
                                    + "\n".join([lines[-1].strip(), *lines]))
        self._address = address
        port = address.split(":")[2].split("/")[0]
        self.say(f"  spark connect server on localhost:{port} (pid {self.process.pid})")

    def _exit_code(self) -> int | None:
        """The exit code of a server that closed its stdout (its end may lag a moment behind); None
        if it still runs after ``STOP_SECONDS``."""
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            return None

    def task_ended(self, succeeded: bool) -> None:
        """After a task that did not succeed (failed, timed out, killed), stop the server: the next
        task starts a new one, and nothing the ended task left running goes on beside it."""
        if not succeeded:
            self.stop()

    def stop(self) -> None:
        """Stop the server if it runs: close its stdin, wait, then end whatever is left of its group."""
        process, self.process, self._address = self.process, None, ""
        if process is None:
            return
        try:
            process.stdin.close()
            process.wait(timeout=STOP_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            pass          # it did not stop by itself: end_group below ends it
        run_guard.end_group(process)
        self._pump.join(timeout=5)
        self._log.close()
