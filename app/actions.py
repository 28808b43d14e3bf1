"""The console's actions: approve, reject, acknowledge, run now, and the Risk page's CSV export.

Each action first calls ``Identity.require`` (the server-side refusal behind every
button; a hidden button is not a permission check), then does the work through the
product's own code, and records who did it:

- approve / reject: the decision's audit row (``governance.decisions``; the role, a comment,
  a recorded validation and, past failing hard checks, an override reason are checked first),
  then a ``model_governance`` run for the version through the launcher, and its "ran job" row.
  The console changes nothing in the registry: the run applies the decision as the model's
  owner (tags, model card, champion alias, serving endpoint). One path locally and on
  Databricks; locally the run is the runner in a background process;
- acknowledge: ``monitoring.alerts.acknowledge`` sets ``acknowledged_by`` / ``acknowledged_at`` (and
  the comment) on the alert row in one conditional update, and writes the audit row;
- run now: the target's job launcher (bundle/launchers.py): locally the bundle's runner in
  a background process, which appends the run to ``job_runs`` (trigger ``console:<user>``);
  on Databricks ``jobs.run_now`` through databricks-sdk (the workspace records the run);
  then one audit row names the user;
- export: reads nothing before the role is checked (it changes nothing, so no audit row).

Cached query results are cleared after each action, so the page shows its effect at once.
"""

from __future__ import annotations

import threading

from app import data
from healthcare_mlops import composition
from healthcare_mlops.bundle.launchers import LaunchedRun
from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import decisions
from healthcare_mlops.runtime.catalog import audit_log
from healthcare_mlops.identity import Identity
from healthcare_mlops.settings import Settings

GOVERNANCE_JOB = "model_governance"     # applies recorded decisions as the model's owner


def _launcher(settings: Settings):
    return composition.launcher(settings, client_factory=lambda: data.workspace_client())


def approve(identity: Identity, version, comment: str, override_reason: str | None = None,
             settings: Settings | None = None) -> LaunchedRun:
    """Record an approval of ``version`` (an override when hard checks fail) and start model_governance.

    The console writes the decision's audit row and starts a ``model_governance`` run for the
    version; that run, as the model's owner, applies it: tags, model card, the champion alias
    and the serving endpoint. Refused (nothing written, nothing started) without the approver
    role, a comment, a recorded validation, or an override reason when hard checks fail.
    """
    return _decide(identity, version, decisions.APPROVE, comment, override_reason, settings)


def reject(identity: Identity, version, comment: str, settings: Settings | None = None) -> LaunchedRun:
    """Record a rejection of ``version`` and start model_governance, which applies it (tags, model card)."""
    return _decide(identity, version, decisions.REJECT, comment, None, settings)


def _decide(identity: Identity, version, kind: str, comment: str, override_reason: str | None,
            settings: Settings | None) -> LaunchedRun:
    identity.require(kind)
    decisions.require_comment(kind, comment)
    settings = settings or data.console_settings()
    version = str(version)
    try:
        decisions.record_decision(audit_log(settings), identity, version, kind, comment, override_reason)
        return start_governance(identity, settings, version)
    finally:
        data.clear_caches()


def start_governance(identity: Identity, settings: Settings, version: str) -> LaunchedRun:
    """Start ``model_governance`` for ``version``; the audit names who started which run."""
    params = {"model_version": version}
    started = _launcher(settings).run_now(GOVERNANCE_JOB, params, trigger=f"console:{identity.user}")
    _remember(started)
    audit_log(settings).record_job_run(identity, started.job_key, started.run_id, params)
    return started


def export_risk_csv(identity: Identity, settings: Settings, user_token: str | None, params: dict) -> bytes:
    """The Risk page's filtered view as CSV bytes (analyst role): refused before a row is read."""
    identity.require("export")
    return data.export_csv("risk_export", settings, user_token, **params)


def acknowledge(identity: Identity, alert_id: str, comment: str | None = None,
                settings: Settings | None = None) -> dict:
    """Mark an alert as seen: who, when (and an optional comment) are written on the alert row."""
    identity.require("acknowledge")
    from healthcare_mlops.monitoring import alerts
    from healthcare_mlops.runtime.catalog import audit_log, table_catalog

    settings = settings or data.console_settings()
    try:
        return alerts.acknowledge(table_catalog(settings), alert_id, identity, audit_log(settings).record_action,
                                  comment)
    finally:
        data.clear_caches()


# -- run now --------------------------------------------------------------------------------

_started: list[LaunchedRun] = []
_started_lock = threading.Lock()


def _remember(run: LaunchedRun) -> None:
    with _started_lock:
        _started.append(run)


def started_runs() -> list[LaunchedRun]:
    """Runs started from this console process, newest first (finished processes are reaped)."""
    with _started_lock:
        for run in _started:
            if run.process is not None:
                run.process.poll()
        return list(reversed(_started[-20:]))


def run_job_now(identity: Identity, job_key: str, params: dict | None = None,
                settings: Settings | None = None) -> LaunchedRun:
    """Start ``job_key`` now with ``params`` (names must be the job's parameters), through the launcher."""
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
    try:
        run = _launcher(settings).run_now(job_key, params, trigger=f"console:{identity.user}")
    finally:
        data.clear_caches()
    _remember(run)
    audit_log(settings).record_job_run(identity, run.job_key, run.run_id, params)
    return run
