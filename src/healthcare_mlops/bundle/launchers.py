"""Start a bundle job: locally through the emulator's runner, on Databricks through ``jobs.run_now``.

One interface for the three places that start jobs: the console's Run now, monitoring's
retrain trigger and ``healthcare-mlops jobs run``. Which implementation serves a target is
decided once, in ``healthcare_mlops.composition``; callers hold a ``JobLauncher`` and never
ask where they run.

- ``LocalRunnerLauncher`` (``healthcare_mlops.emulator.launcher``): ``wait=True`` runs the job
  in this process (each task its own process, recorded in ``job_runs``) and returns its final
  status; ``wait=False`` starts the runner in a background process logging under the home.
- ``DatabricksJobsLauncher``: ``WorkspaceClient().jobs.run_now(job_id=..., job_parameters=...,
  idempotency_token=...)``; the call returns once the run is queued. A job is named by its
  numeric id, or by its key when ``$HEALTHCARE_MLOPS_JOB_ID_<KEY>`` holds the id (app.yaml
  ``valueFrom: job-<key>``).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from healthcare_mlops.bundle.run_states import SUCCEEDED
from healthcare_mlops.errors import UserError

JOB_ID_ENV_PREFIX = "HEALTHCARE_MLOPS_JOB_ID_"
QUEUED, RUNNING = "QUEUED", "RUNNING"


@dataclass
class LaunchedRun:
    """A job run that a launcher started."""

    job_key: str
    run_id: str | None
    status: str                       # the final status when waited for; QUEUED / RUNNING otherwise
    where: str                        # local / databricks
    started_at: dt.datetime
    trigger: str = "manual"           # who or what started it: manual, monitoring, console:<user> ...
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    error: str | None = None

    @property
    def state(self) -> str:
        """What a person reads: submitted, running, finished or failed (exit code N)."""
        if self.process is None:
            return "submitted" if self.status in (QUEUED, RUNNING) else self.status.lower()
        code = self.process.poll()
        return "running" if code is None else ("finished" if code == 0 else f"failed (exit code {code})")

    def raise_for_status(self) -> "LaunchedRun":
        """``UserError`` with the failing task's error when a waited-for run did not succeed."""
        if self.status not in (SUCCEEDED, QUEUED, RUNNING):
            raise UserError(f"job '{self.job_key}' (run {self.run_id}) {self.status}: {self.error}")
        return self


def job_id_env(job_key: str) -> str:
    return JOB_ID_ENV_PREFIX + job_key.upper()


class JobLauncher(ABC):
    """Starts a bundle job by its key (or, on Databricks, its numeric id)."""

    where: str

    @abstractmethod
    def run_now(self, job: str, params: dict | None = None, trigger: str = "manual", wait: bool = False,
                idempotency_token: str | None = None, echo: bool = True,
                task_output: bool | None = None) -> LaunchedRun:
        """Start ``job`` with ``params``; wait for its end when ``wait`` (where the runtime can)."""

    def check(self, job: str) -> None:
        """Refuse a job this launcher cannot start, offline: before a caller asks who the user is."""


class DatabricksJobsLauncher(JobLauncher):
    """Deployed jobs of a workspace, started with databricks-sdk."""

    where = "databricks"

    def __init__(self, client_factory: Callable[[], object], target: str, environ: dict | None = None):
        self._client_factory = client_factory
        self.target = target
        self._client = None
        self.environ = os.environ if environ is None else environ

    @property
    def client(self):
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def job_id(self, job: str) -> int:
        """A numeric id as it is; a job key through ``$HEALTHCARE_MLOPS_JOB_ID_<KEY>``."""
        text = str(job).strip()
        if text.isdigit():
            return int(text)
        value = str(self.environ.get(job_id_env(text)) or "").strip()
        if value.isdigit():
            return int(value)
        raise UserError(f"no deployed job id for '{text}': set ${job_id_env(text)} (app.yaml valueFrom: "
                        f"job-{text}) or pass the job's numeric id; from a terminal, run "
                        f"`databricks bundle run -t {self.target} {text}`")

    def check(self, job: str) -> None:
        self.job_id(job)

    def run_now(self, job: str, params: dict | None = None, trigger: str = "manual", wait: bool = False,
                idempotency_token: str | None = None, echo: bool = True,
                task_output: bool | None = None) -> LaunchedRun:
        started = dt.datetime.now(dt.timezone.utc)
        arguments = {"job_id": self.job_id(job), "job_parameters": {k: str(v) for k, v in (params or {}).items()}
                     or None}
        if idempotency_token:
            arguments["idempotency_token"] = idempotency_token
        waiter = self.client.jobs.run_now(**arguments)
        response = getattr(waiter, "response", None)
        run_id = getattr(response, "run_id", None) or getattr(waiter, "run_id", None)
        return LaunchedRun(str(job), None if run_id is None else str(run_id), QUEUED, self.where, started, trigger)
