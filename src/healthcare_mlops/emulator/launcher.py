"""The local launcher: a bundle job started through the emulator's runner.

``wait=True`` runs the job in this process (each task its own process, recorded in
``job_runs``) and returns its final status; ``wait=False`` starts the runner in a background
process whose output goes to a log file under the home. ``composition`` chooses it for the
local target; the interface is ``healthcare_mlops.bundle.launchers.JobLauncher``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from healthcare_mlops.bundle.definition import BUNDLE_ROOT_ENV, Bundle, load_bundle
from healthcare_mlops.bundle.launchers import RUNNING, JobLauncher, LaunchedRun
from healthcare_mlops.settings import HOME_ENV, Settings

_RUN_SNIPPET = (
    "import json, sys\n"
    "from healthcare_mlops.emulator.runner import run_job\n"
    "run = run_job(sys.argv[1], json.loads(sys.argv[2]), trigger=sys.argv[3])\n"
    "sys.exit(0 if run.succeeded else 1)\n"
)


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
