"""The console's actions: approve, reject, acknowledge, run now.

Each action first calls ``Identity.require`` (the server-side refusal behind every
button; a hidden button is not a permission check), then does the work through the
product's own code, and records who did it:

- approve / reject: ``Governance`` (the MLflow registry) writes the audit row itself;
- acknowledge: ``monitoring.alerts.acknowledge`` sets ``acknowledged_by`` / ``acknowledged_at`` (and
  the comment) on the alert row in one conditional update;
- run now: locally the bundle's runner in a background process, which appends the run to
  ``job_runs`` (trigger ``console:<user>``); on Databricks ``jobs.run_now`` through
  databricks-sdk (the workspace records the run).

Cached query results are cleared after each action, so the page shows its effect at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from app import data
from healthcare_mlops.errors import UserError
from healthcare_mlops.identity import Identity
from healthcare_mlops.settings import HOME_ENV, Settings

ENDPOINT_JOB = "model_governance"       # moves the alias and the serving endpoint (Databricks)


def approve(identity: Identity, version, comment: str, override_reason: str | None = None,
            settings: Settings | None = None) -> str:
    """Approve ``version`` (an override when hard checks fail); locally it is promoted at once.

    On Databricks the app records the decision only (audit row, version tags, status
    "approved, promotion running") and starts a ``model_governance`` run: moving the alias
    needs the model's owner, which the job runs as, and the job also moves the endpoint.
    The click returns at once; the run is in the Jobs page.
    """
    identity.require("approve")
    from healthcare_mlops.governance.service import Governance

    settings = settings or data.console_settings()
    try:
        approved = Governance(settings, identity, serve_endpoint=settings.is_local).approve(
            str(version), comment, override_reason or None, promote=settings.is_local)
        if not settings.is_local:
            start_promotion(identity)
        return approved
    finally:
        data.clear_caches()


def start_promotion(identity: Identity) -> StartedRun:
    """Start the ``model_governance`` job, which promotes the approved challenger as the model's owner."""
    started = _start_databricks(identity, ENDPOINT_JOB, {}, dt.datetime.now(dt.timezone.utc))
    with _started_lock:
        _started.append(started)
    return started


def reject(identity: Identity, version, comment: str, settings: Settings | None = None) -> None:
    identity.require("reject")
    from healthcare_mlops.governance.service import Governance

    settings = settings or data.console_settings()
    try:
        Governance(settings, identity).reject(str(version), comment)
    finally:
        data.clear_caches()


def acknowledge(identity: Identity, alert_id: str, comment: str | None = None,
                settings: Settings | None = None) -> dict:
    """Mark an alert as seen: who, when (and an optional comment) are written on the alert row."""
    identity.require("acknowledge")
    from healthcare_mlops.monitoring import alerts

    settings = settings or data.console_settings()
    try:
        return alerts.acknowledge(settings, alert_id, identity, comment)
    finally:
        data.clear_caches()


# -- run now --------------------------------------------------------------------------------

_RUN_SNIPPET = (
    "import json, sys\n"
    "from healthcare_mlops.bundle.runner import run_job\n"
    "run = run_job(sys.argv[1], json.loads(sys.argv[2]), trigger=sys.argv[3])\n"
    "sys.exit(0 if run.succeeded else 1)\n"
)


@dataclass
class StartedRun:
    """A job run the console started: a local runner process or a workspace run."""

    job_key: str
    started_by: str
    started_at: dt.datetime
    run_id: int | None = None
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    url: str | None = None

    @property
    def state(self) -> str:
        if self.process is None:
            return "submitted"
        code = self.process.poll()
        return "running" if code is None else ("finished" if code == 0 else f"failed (exit code {code})")


_started: list[StartedRun] = []
_started_lock = threading.Lock()


def started_runs() -> list[StartedRun]:
    """Runs started from this console process, newest first (finished processes are reaped)."""
    with _started_lock:
        for run in _started:
            if run.process is not None:
                run.process.poll()
        return list(reversed(_started[-20:]))


def _package_root() -> str:
    import healthcare_mlops

    return str(Path(healthcare_mlops.__file__).resolve().parents[1])


def run_job_now(identity: Identity, job_key: str, params: dict | None = None,
                settings: Settings | None = None) -> StartedRun:
    """Start ``job_key`` now with ``params`` (names must be the job's parameters)."""
    identity.require("run_job")
    settings = settings or data.console_settings()
    known = {job["job_key"]: job for job in data.bundle_jobs()}
    if job_key not in known:
        raise UserError(f"'{job_key}' is not a job of the bundle (jobs: {', '.join(known)})")
    declared = known[job_key]["parameters"]
    unknown = sorted(set(params or {}) - set(declared))
    if unknown:
        raise UserError(f"'{unknown[0]}' is not a parameter of job '{job_key}'")
    params = {k: str(v) for k, v in (params or {}).items()}
    now = dt.datetime.now(dt.timezone.utc)
    try:
        if settings.is_local:
            run = _start_local(settings, identity, job_key, params, now)
        else:
            run = _start_databricks(identity, job_key, params, now)
    finally:
        data.clear_caches()
    with _started_lock:
        _started.append(run)
    _audit_run(settings, identity, run, params)
    return run


def _audit_run(settings: Settings, identity: Identity, run: "StartedRun", params: dict) -> None:
    """Who started which run, in the audit table (on Databricks the run itself shows only the app)."""
    from healthcare_mlops.governance import audit

    comment = f"{run.job_key}" + (f" run {run.run_id}" if run.run_id else "") + \
        (f" with {json.dumps(params, sort_keys=True)}" if params else "")
    audit.record(settings, audit.audit_event(settings.model_name, "", audit.RAN_JOB, identity.user, identity.role,
                                             str(settings.variables.get("approval_mode") or "auto"),
                                             comment=comment))


def _start_local(settings: Settings, identity: Identity, job_key: str, params: dict,
                 now: dt.datetime) -> StartedRun:
    from healthcare_mlops.bundle.definition import BUNDLE_ROOT_ENV, load_bundle
    from healthcare_mlops.bundle.runner import plan_job

    bundle = load_bundle()
    plan_job(job_key, params, bundle)     # refuse a job that cannot run before starting a process
    home = settings.home.resolve()
    log_dir = home / "logs" / "console"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{now:%Y%m%dT%H%M%S%f}-{job_key}.log"
    python_path = os.pathsep.join(p for p in (_package_root(), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, HOME_ENV: str(home), BUNDLE_ROOT_ENV: str(bundle.root), "PYTHONPATH": python_path,
           "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen([sys.executable, "-c", _RUN_SNIPPET, job_key, json.dumps(params),
                                    f"console:{identity.user}"],
                                   cwd=str(bundle.root), env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    return StartedRun(job_key=job_key, started_by=identity.user, started_at=now, log_path=log_path,
                      process=process)


def _start_databricks(identity: Identity, job_key: str, params: dict, now: dt.datetime) -> StartedRun:
    job_id = data.databricks_job_id(job_key)
    if job_id is None:
        raise UserError(f"the app has no job resource for '{job_key}' (${data.job_id_env(job_key)} "
                        "is not set; see app.yaml and resources/console.yml)")
    waiter = data.workspace_client().jobs.run_now(job_id=job_id, job_parameters=params or None)
    run_id = getattr(waiter, "run_id", None) or getattr(getattr(waiter, "response", None), "run_id", None)
    return StartedRun(job_key=job_key, started_by=identity.user, started_at=now, run_id=run_id)
