"""The ``job_runs`` table: one row per local job run and one per task run, appended as each ends.

A job run's row has ``parent_run_id`` and ``task_key`` null; each of its task runs has
``parent_run_id`` = the job run's ``run_id``. ``parameters`` is a JSON string: the job
parameters for a job run, the task's resolved argv for a task run. Rows are only ever
appended (one Delta commit per row batch), so the history is never rewritten. The
console's Jobs page and ``healthcare-mlops jobs runs`` read it.

Status values are the Databricks run result states (``bundle/run_states.py``): a task that could not run because
a task it depends on failed is ``UPSTREAM_FAILED``. ``CANCELED``: the runner was stopped
(Ctrl+C, SIGTERM) and recorded it; ``INTERRUPTED``: the runner was killed outright and the
next runner start recorded it (``run_guard.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass

import pyarrow as pa

from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import JOB_RUNS, JOB_RUNS_SPEC


JOB_RUNS_SCHEMA = JOB_RUNS_SPEC.arrow_schema()
JOB_RUNS_COLUMNS = tuple(JOB_RUNS_SCHEMA.names)

_lock = threading.Lock()
_last_id = 0


def new_run_id() -> int:
    """A run id that grows with time (microseconds since the epoch) and never repeats in a process."""
    global _last_id
    with _lock:
        candidate = time.time_ns() // 1000
        _last_id = max(candidate, _last_id + 1)
        return _last_id


@dataclass
class RunRecord:
    """One row of ``job_runs``."""

    run_id: int
    job_key: str
    status: str
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    parent_run_id: int | None = None
    task_key: str | None = None
    trigger: str | None = None
    error: str | None = None
    parameters: object = None

    @property
    def duration_seconds(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return round((self.end_time - self.start_time).total_seconds(), 3)

    def as_row(self) -> dict:
        parameters = self.parameters
        if parameters is not None and not isinstance(parameters, str):
            parameters = json.dumps(parameters, default=str)
        return {"run_id": self.run_id, "parent_run_id": self.parent_run_id, "job_key": self.job_key,
                "task_key": self.task_key, "status": self.status, "trigger": self.trigger,
                "start_time": self.start_time, "end_time": self.end_time,
                "duration_seconds": self.duration_seconds, "error": self.error,
                "parameters": parameters}


def to_arrow(records: list[RunRecord]) -> pa.Table:
    rows = [record.as_row() for record in records]
    return pa.Table.from_pylist(rows, schema=JOB_RUNS_SCHEMA)


def append_runs(settings: Settings, records: list[RunRecord]) -> int | None:
    """Append ``records`` to ``job_runs`` in one commit; the new table version."""
    if not records:
        return None
    from healthcare_mlops.runtime.catalog import table_catalog

    catalog = table_catalog(settings)
    catalog.write(to_arrow(records), JOB_RUNS, mode="append")
    return catalog.version(JOB_RUNS)


def read_runs(settings: Settings, job_key: str | None = None, limit: int | None = None):
    """The run history as a pandas DataFrame, newest job run first, each followed by its tasks."""
    import pandas as pd

    from healthcare_mlops.runtime.catalog import table_catalog

    catalog = table_catalog(settings)
    columns = list(JOB_RUNS_COLUMNS)
    if not catalog.exists(JOB_RUNS):
        return pd.DataFrame(columns=columns)
    frame = catalog.read_arrow(JOB_RUNS).to_pandas()
    for column in ("run_id", "parent_run_id"):
        frame[column] = frame[column].astype("Int64")
    if job_key:
        frame = frame[frame["job_key"] == job_key]
    jobs = frame[frame["parent_run_id"].isna()].sort_values("start_time", ascending=False)
    if limit:
        jobs = jobs.head(limit)
    job_start = dict(zip(jobs["run_id"], jobs["start_time"]))
    frame = frame[frame["run_id"].isin(job_start) | frame["parent_run_id"].isin(job_start)].copy()
    frame["_job_start"] = [job_start.get(parent if parent is not pd.NA else run, job_start.get(run))
                           for run, parent in zip(frame["run_id"], frame["parent_run_id"])]
    frame["_is_task"] = frame["parent_run_id"].notna()
    frame = frame.sort_values(["_job_start", "_is_task", "start_time"], ascending=[False, True, True],
                              kind="stable")
    return frame[columns].reset_index(drop=True)
