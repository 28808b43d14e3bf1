"""The job runs of a Databricks workspace in the local runner's words and columns.

The console's Jobs page shows one table for both runtimes: the local runner's ``job_runs``
table, or these rows read from the workspace with databricks-sdk (``jobs.list_runs``).
"""

from __future__ import annotations

import pandas as pd

from healthcare_mlops.bundle.run_states import FAILED, SUCCEEDED, TIMED_OUT, UPSTREAM_FAILED

# Databricks result states in the runner's words (bundle/run_states.py), so one page and one
# colour map serve both runtimes; a state not listed (RUNNING, QUEUED ...) is shown as it is.
DATABRICKS_STATUS = {"SUCCESS": SUCCEEDED, "SUCCESS_WITH_FAILURES": FAILED, "TIMEDOUT": TIMED_OUT,
                     "UPSTREAM_CANCELED": UPSTREAM_FAILED}


def databricks_status(state) -> str:
    """A run's state (``jobs.RunState``) as the runner names it: its result, else its life cycle."""
    result = getattr(state, "result_state", None) if state else None
    life = getattr(state, "life_cycle_state", None) if state else None
    status = getattr(result or life, "value", result or life)
    return DATABRICKS_STATUS.get(str(status or ""), str(status or ""))


def _millis(value) -> pd.Timestamp:
    return pd.Timestamp(int(value), unit="ms", tz="UTC") if value else pd.NaT


def workspace_runs(client, job_ids: dict[str, int], limit: int = 25) -> pd.DataFrame:
    """Recent runs of the deployed jobs (job key -> id), newest first, in the runner's columns."""
    rows = []
    for job_key, job_id in job_ids.items():
        for run in client.jobs.list_runs(job_id=job_id, limit=limit):
            state = run.state
            start, end = _millis(run.start_time), _millis(run.end_time)
            duration = (run.run_duration or 0) / 1000 if run.run_duration else (
                (end - start).total_seconds() if pd.notna(start) and pd.notna(end) else None)
            rows.append({"run_id": run.run_id, "job_key": job_key, "status": databricks_status(state),
                         "trigger": str(getattr(run.trigger, "value", run.trigger) or ""),
                         "start_time": start, "end_time": end, "duration_seconds": duration,
                         "error": getattr(state, "state_message", None) if state else None,
                         "url": run.run_page_url})
            if len(rows) > 500:
                break
    frame = pd.DataFrame(rows)
    return frame.sort_values("start_time", ascending=False).reset_index(drop=True) if rows else frame
