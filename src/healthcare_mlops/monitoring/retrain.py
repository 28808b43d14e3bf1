"""A critical alert triggers the training pipeline: locally through the runner, on Databricks by ``run_now``.

``--retrain_job_id`` comes from the bundle (``${resources.jobs.ml_training_pipeline.id}``):
on Databricks the deployed job's numeric id, locally the job's key. The retrain runs the
pipeline on the latest load, and its validation scoring on the window's end.

- Databricks: ``WorkspaceClient().jobs.run_now(job_id=..., job_parameters=...,
  idempotency_token=...)``. The call returns as soon as the run is queued; the run id is
  recorded on the alerts. The token is derived from the window and the alerts, so a
  retried monitoring task does not start a second run (Databricks returns the first).
  The bundle's model_monitoring job stays a single ``spark_python_task`` (the local runner
  runs exactly that task type, and the same decision logic serves both runtimes).
- Local: ``bundle.runner.run_job`` in this process, as ``healthcare-mlops jobs run``
  would: each pipeline task is its own process, the runner waits for it, and the run is
  recorded in ``job_runs`` with trigger ``monitoring``. Nothing is shared with the run that
  called it (no lock, no table the caller holds open), so it cannot deadlock; the
  monitoring task simply ends after the retrain, whose outcome it prints.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import Settings

TRIGGER = "monitoring"


@dataclass(frozen=True)
class RetrainRun:
    run_id: str
    status: str            # local: the run's final status; Databricks: QUEUED (it runs on its own)
    where: str             # local / databricks


def idempotency_token(settings: Settings, window_start: dt.date, window_end: dt.date, alert_ids: list[str]) -> str:
    """At most 64 characters, the same for the same window and alerts."""
    key = "|".join([settings.catalog, settings.schema, window_start.isoformat(), window_end.isoformat(),
                    *sorted(alert_ids)])
    return "hc-retrain-" + hashlib.sha256(key.encode()).hexdigest()[:48]


def retrain_parameters(window_end: dt.date) -> dict[str, str]:
    """Train on the latest load (``as_of`` empty), validate by scoring the window's end.

    Not ``as_of = window_end``: scoring dates are daily while loads need not be, and the
    feature step accepts only a date that has a load.
    """
    return {"as_of": "", "scoring_date": window_end.isoformat()}


def run_now(client, retrain_job_id: str, parameters: dict, token: str) -> RetrainRun:
    """``jobs.run_now`` on a Databricks workspace client; the new run's id."""
    try:
        job_id = int(str(retrain_job_id).strip())
    except ValueError:
        raise UserError(f"--retrain_job_id must be the numeric id of the deployed training pipeline job on "
                        f"Databricks, not '{retrain_job_id}'") from None
    waiter = client.jobs.run_now(job_id=job_id, job_parameters=dict(parameters), idempotency_token=token)
    response = getattr(waiter, "response", None)
    run_id = getattr(response, "run_id", None)
    if run_id is None:
        run_id = waiter.run_id
    return RetrainRun(run_id=str(run_id), status="QUEUED", where="databricks")


def trigger_retrain(settings: Settings, retrain_job_id: str, window_start: dt.date, window_end: dt.date,
                    alert_ids: list[str], client=None, bundle=None, echo: bool = True) -> RetrainRun | None:
    """Start the retrain job (None when ``retrain_job_id`` is empty: retraining is switched off)."""
    if not str(retrain_job_id or "").strip():
        return None
    parameters = retrain_parameters(window_end)
    if settings.is_local:
        from healthcare_mlops.bundle.definition import load_bundle
        from healthcare_mlops.bundle.runner import run_job

        job_key = str(retrain_job_id).strip()
        bundle = bundle or load_bundle()
        if job_key not in bundle.jobs():
            raise UserError(f"--retrain_job_id '{job_key}' is not a job of the bundle "
                            f"(jobs: {', '.join(sorted(bundle.jobs()))})")
        declared = {p.get("name") for p in bundle.jobs()[job_key].get("parameters") or [] if isinstance(p, dict)}
        result = run_job(job_key, {k: v for k, v in parameters.items() if k in declared}, home=settings.home,
                         bundle=bundle, trigger=TRIGGER, echo=echo, task_output=False)
        return RetrainRun(run_id=str(result.run_id), status=result.status, where="local")
    if client is None:
        from databricks.sdk import WorkspaceClient

        client = WorkspaceClient()
    return run_now(client, retrain_job_id, parameters,
                   idempotency_token(settings, window_start, window_end, alert_ids))
