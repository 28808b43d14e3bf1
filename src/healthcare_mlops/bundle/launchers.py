"""Start a bundle job: locally through the runner, on Databricks through ``jobs.run_now``.

One interface for the three places that start jobs: the console's Run now, monitoring's
retrain trigger and ``healthcare-mlops jobs run``. Which implementation serves a target is
decided once, in ``healthcare_mlops.composition``; callers hold a ``JobLauncher`` and never
ask where they run.

- ``LocalRunnerLauncher``: ``wait=True`` runs the job in this process (each task its own
  process, recorded in ``job_runs``) and returns its final status; ``wait=False`` starts
  the runner in a background process whose output goes to a log file under the home.
- ``DatabricksJobsLauncher``: ``WorkspaceClient().jobs.run_now(job_id=..., job_parameters=...,
  idempotency_token=...)``; the call returns once the run is queued. A job is named by its
  numeric id, or by its key when ``$HEALTHCARE_MLOPS_JOB_ID_<KEY>`` holds the id (app.yaml
  ``valueFrom: job-<key>``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from healthcare_mlops.bundle.definition import BUNDLE_ROOT_ENV, Bundle, load_bundle
from healthcare_mlops.emulator.run_history import SUCCEEDED
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import HOME_ENV, Settings

JOB_ID_ENV_PREFIX = "HEALTHCARE_MLOPS_JOB_ID_"
QUEUED, RUNNING = "QUEUED", "RUNNING"
_RUN_SNIPPET = (
    "import json, sys\n"
    "from healthcare_mlops.emulator.runner import run_job\n"
    "run = run_job(sys.argv[1], json.loads(sys.argv[2]), trigger=sys.argv[3])\n"
    "sys.exit(0 if run.succeeded else 1)\n"
)


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


class LocalRunnerLauncher(JobLauncher):
    """The bundle's own job definitions, executed by the local runner."""

    where = "local"

    def __init__(self, settings: Settings, bundle: Bundle | None = None):
        self.settings = settings
        self._bundle = bundle

    @property
    def bundle(self) -> Bundle:
        if self._bundle is None:
            self._bundle = load_bundle()
        return self._bundle

    def run_now(self, job: str, params: dict | None = None, trigger: str = "manual", wait: bool = False,
                idempotency_token: str | None = None, echo: bool = True,
                task_output: bool | None = None) -> LaunchedRun:
        from healthcare_mlops.emulator.runner import plan_job, run_job

        job_key = str(job).strip()
        started = dt.datetime.now(dt.timezone.utc)
        if wait:
            result = run_job(job_key, params, home=self.settings.home, bundle=self.bundle, trigger=trigger,
                             echo=echo, task_output=task_output)
            return LaunchedRun(job_key, str(result.run_id), result.status, self.where, started, trigger,
                               error=result.error)
        plan_job(job_key, params, self.bundle)      # refuse a job that cannot run before starting a process
        return self._start_background(job_key, params or {}, trigger, started)

    def _start_background(self, job_key: str, params: dict, trigger: str, started: dt.datetime) -> LaunchedRun:
        import healthcare_mlops

        home = self.settings.home.resolve()
        log_dir = home / "logs" / "console"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{started:%Y%m%dT%H%M%S%f}-{job_key}.log"
        package_root = str(Path(healthcare_mlops.__file__).resolve().parents[1])
        python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, HOME_ENV: str(home), BUNDLE_ROOT_ENV: str(self.bundle.root),
               "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen([sys.executable, "-c", _RUN_SNIPPET, job_key, json.dumps(params), trigger],
                                       cwd=str(self.bundle.root), env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        return LaunchedRun(job_key, None, RUNNING, self.where, started, trigger, log_path=log_path, process=process)


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
