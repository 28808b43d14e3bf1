"""Jobs: the recent runs and Run now on arrival; as views picked when wanted, their durations, a run's tasks and
the bundle's job definitions."""

import pandas as pd
import streamlit as st

from app import actions, auth, charts, data, ui


def _jobs_table(jobs: list[dict]) -> pd.DataFrame:
    rows = []
    for job in jobs:
        schedule = job["schedule"]
        rows.append({
            "job": job["job_key"],
            "schedule": (f"{schedule['quartz_cron_expression']} {schedule['timezone_id']} ({schedule['pause_status']})"
                         if schedule else "on demand"),
            "parameters": ", ".join(f"{k}={v!r}" for k, v in job["parameters"].items()),
            "tasks": " -> ".join(t["task_key"] for t in job["tasks"]),
        })
    return pd.DataFrame(rows)


def _with_running(runs: pd.DataFrame, task_history: bool) -> pd.DataFrame:
    """The runs, with those started and not ended yet on top (status RUNNING): the local runner writes a
    run's row when it ends, its start only to the audit log ("job run started: <job> run <id>")."""
    running = data.query("running_jobs") if task_history else pd.DataFrame()
    if running.empty:
        return runs
    parts = running["comment"].str.extract(r"^(?P<job_key>\S+) run (?P<run_id>\d+)$")
    now = pd.Timestamp.now(tz="UTC")
    started = pd.to_datetime(running["start_time"], utc=True)
    rows = pd.DataFrame({"run_id": pd.to_numeric(parts["run_id"]), "job_key": parts["job_key"], "status": "RUNNING",
                         "trigger": running["trigger"], "start_time": started, "end_time": pd.NaT,
                         "duration_seconds": (now - started).dt.total_seconds().round(1),
                         "error": ""}).dropna(subset=["job_key"])
    rows = rows[~rows["run_id"].isin(runs["run_id"])] if "run_id" in runs else rows
    both = pd.concat([rows, runs], ignore_index=True) if not runs.empty else rows
    # one timestamp type per column (UTC): the ended runs' zone is the engine's ("Etc/UTC", or naive), and a
    # column of mixed zones or of NaT beside timestamps is objects, which the table cannot send as timestamps
    return both.assign(**{column: pd.to_datetime(both[column], utc=True) for column in ("start_time", "end_time")})


def _run_now(identity, jobs: list[dict]) -> None:
    st.subheader("Run now")
    if not auth.can(identity, "run_job"):
        st.caption(f"Starting a job needs the operator role; you are {identity.role}.")
        return
    by_key = {job["job_key"]: job for job in jobs}
    job_key = st.selectbox("Job", list(by_key), key="run_job")
    params = {}
    declared = by_key[job_key]["parameters"]
    if declared:
        columns = st.columns(min(len(declared), 4))
        for index, (name, default) in enumerate(declared.items()):
            params[name] = columns[index % len(columns)].text_input(
                name, value="" if default is None else str(default), key=f"run_param_{job_key}_{name}")
    if st.button("Run now", key="run_now", type="primary"):
        with ui.guard():
            changed = {k: v for k, v in params.items() if v != str(declared.get(k) or "")}
            started = actions.run_job_now(identity, job_key, changed)
            where = f"log: `{started.log_path}`" if started.log_path else f"run {started.run_id}"
            st.success(f"Started {job_key} for {identity.user} ({where}). It appears under Recent runs as "
                       "RUNNING (reload the page) until it ends.")


def _recent_runs(runs: pd.DataFrame, **_) -> None:
    shown = runs.assign(error=runs["error"].map(
        lambda e: e.strip().splitlines()[0][:160] if isinstance(e, str) and e.strip() else ""))
    ui.table(shown, key="jobs_runs", wide=("error",))


def _durations(runs: pd.DataFrame, **_) -> None:
    if runs["duration_seconds"].notna().any():
        ui.chart(charts.job_durations, runs.dropna(subset=["duration_seconds"]), key="jobs_durations")
    else:
        st.info("No run has a duration yet.")


def _tasks(runs: pd.DataFrame, facts, **_) -> None:
    """The tasks of a run picked among the last 50."""
    if not facts.task_history:
        st.info(f"Task runs are kept by {facts.jobs_run_by}, not in this lakehouse.")
        return
    labels = {int(r.run_id): f"{r.job_key} · {r.start_time:%Y-%m-%d %H:%M:%S} · {r.status}"
              for r in runs.head(50).itertuples()}
    run_id = st.selectbox("Tasks of run", list(labels), format_func=labels.get, key="jobs_run_detail")
    tasks = data.task_runs(run_id)
    if tasks.empty:
        st.caption("No task of this run has ended yet.")
    else:
        ui.table(tasks, key="jobs_tasks", wide=("error",))


def _definitions(jobs: list[dict], facts, **_) -> None:
    st.caption(f"The jobs of the bundle (databricks.yml, resources/jobs.yml), the same definitions "
               f"{facts.jobs_run_by} executes.")
    ui.table(_jobs_table(jobs), key="jobs_table", wide=("parameters", "tasks"), lines=3)


# The recent runs on arrival; their durations, a run's tasks and the jobs' definitions when asked for.
VIEWS = {"Recent runs": _recent_runs, "Durations": _durations, "Tasks of a run": _tasks,
         "Job definitions": _definitions, "Run a job": lambda jobs, **_: _run_now(ui.identity(), jobs)}


def render() -> None:
    st.title("Jobs")
    facts = data.facts()
    jobs = data.bundle_jobs()
    started = actions.started_runs()
    if started:
        st.caption("Started from this console: " + "; ".join(
            f"{run.job_key} by {run.trigger.removeprefix('console:')} at {run.started_at:%H:%M:%S} UTC: {run.state}"
            for run in started))
    runs = _with_running(data.job_runs(), facts.task_history)
    if runs.empty:
        st.info("No job runs yet. Start one below" + (f", or {data.run_hint('JOB')}." if facts.task_history
                                                      else "."))
        _definitions(jobs, facts)
        _run_now(ui.identity(), jobs)
    else:
        succeeded, running = int((runs["status"] == "SUCCEEDED").sum()), int((runs["status"] == "RUNNING").sum())
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Job runs", f"{len(runs):,}")
        c2.metric("Running", f"{running:,}")
        c3.metric("Succeeded", f"{succeeded:,}")
        c4.metric("Not succeeded", f"{len(runs) - succeeded - running:,}")
        view, shown = ui.views("Show", list(VIEWS), key="jobs_view")
        with shown:
            VIEWS[view](runs=runs, jobs=jobs, facts=facts)


with ui.guard():
    render()
