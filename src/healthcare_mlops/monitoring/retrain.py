"""A critical alert triggers the training pipeline through the job launcher it is handed.

``--retrain_job_id`` comes from the bundle (``${resources.jobs.ml_training_pipeline.id}``):
on Databricks the deployed job's numeric id, locally the job's key. The retrain runs the
pipeline on the latest load, and its validation scoring on the window's end.

The launcher (bundle/launchers.py, built by ``healthcare_mlops.composition``) decides how:
locally the runner runs the pipeline in this process (each task its own process,
recorded in ``job_runs`` with trigger ``monitoring``) and the monitoring task prints the
outcome; on Databricks ``jobs.run_now`` queues it with an idempotency token derived from
the window and the alerts, so a retried monitoring task does not start a second run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

from healthcare_mlops.tables import TableRegistry

TRIGGER = "monitoring"


def idempotency_token(tables: TableRegistry, window_start: dt.date, window_end: dt.date,
                      alert_ids: list[str]) -> str:
    """At most 64 characters, the same for the same catalog.schema, window and alerts."""
    key = "|".join([tables.catalog, tables.schema, window_start.isoformat(), window_end.isoformat(),
                    *sorted(alert_ids)])
    return "hc-retrain-" + hashlib.sha256(key.encode()).hexdigest()[:48]


def retrain_parameters(window_end: dt.date, latest_load: dt.date | None) -> dict[str, str]:
    """Train on the latest load, validate by scoring the window's end.

    Not ``as_of = window_end``: scoring dates are daily while loads need not be, and the
    feature step accepts only a date that has a load. The load's date is named, so the
    retrain's tasks say which load they train on; with none known (no silver table), the
    job's default (its latest load) decides.
    """
    named = {"as_of": latest_load.isoformat()} if latest_load else {}
    return {**named, "scoring_date": window_end.isoformat()}


def trigger_retrain(tables: TableRegistry, launcher, retrain_job_id: str, window_start: dt.date,
                    window_end: dt.date, alert_ids: list[str], echo: bool = True,
                    latest_load: dt.date | None = None):
    """Start the retrain job (None when ``retrain_job_id`` is empty: retraining is switched off)."""
    if not str(retrain_job_id or "").strip():
        return None
    return launcher.run_now(str(retrain_job_id).strip(), retrain_parameters(window_end, latest_load),
                            trigger=TRIGGER, wait=True,
                            idempotency_token=idempotency_token(tables, window_start, window_end, alert_ids),
                            echo=echo, task_output=False)


def retrain_once(tables: TableRegistry, launcher, retrain_job_id: str | None, window: tuple[dt.date, dt.date],
                 critical: list[dict], previous, record_retrain: Callable[[list[str], str], None],
                 latest_load: dt.date | None = None) -> tuple[str | None, str]:
    """Start one retrain for the window's critical alerts, unless the window already has one.

    ``critical`` are this run's critical alert rows (their ``retrain_run_id`` is set here),
    ``previous`` the window's alert rows before this run; ``record_retrain(alert ids, run id)``
    links the alerts to the retrain in the alerts table (``alerts.record_retrain`` on the
    target's catalog). Returns the retrain's run id (the earlier one when a rerun finds it)
    and a line for the log.
    """
    if not critical:
        return None, ""
    earlier_runs = previous["retrain_run_id"].dropna() if "retrain_run_id" in previous else []
    linked = [a["retrain_run_id"] for a in critical if a["retrain_run_id"]] + [r for r in earlier_runs if r]
    ids = [a["alert_id"] for a in critical]
    if linked:
        unlinked = [a["alert_id"] for a in critical if not a["retrain_run_id"]]
        if unlinked:
            record_retrain(unlinked, linked[0])
        return linked[0], f"retrain for this window was already triggered: run {linked[0]}"
    run = trigger_retrain(tables, launcher, retrain_job_id or "", window[0], window[1], ids,
                          latest_load=latest_load)
    if run is None:
        return None, "critical alert, but no --retrain_job_id: no retrain triggered"
    record_retrain(ids, run.run_id)
    for alert in critical:
        alert["retrain_run_id"] = run.run_id
    return run.run_id, f"critical alert -> retrain job '{retrain_job_id}' run {run.run_id} ({run.status})"
