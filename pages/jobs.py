"""Jobs: the bundle's jobs, their recent runs and durations, and Run now."""

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
            "tasks": " -> ".join(t["task_key"] for t in job["tasks"]),
            "parameters": ", ".join(f"{k}={v!r}" for k, v in job["parameters"].items()),
        })
    return pd.DataFrame(rows)


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
            st.success(f"Started {job_key} for {identity.user} ({where}). It appears below when its first "
                       "task ends.")


def render() -> None:
    st.title("Jobs")
    facts = data.facts()
    jobs = data.bundle_jobs()
    st.caption(f"The jobs of the bundle (databricks.yml, resources/jobs.yml), the same definitions "
               f"{facts.jobs_run_by} executes.")
    ui.table(_jobs_table(jobs), key="jobs_table", wide=("schedule", "tasks", "parameters"), lines=2)

    started = actions.started_runs()
    if started:
        st.caption("Started from this console: " + "; ".join(
            f"{run.job_key} by {run.trigger.removeprefix('console:')} at {run.started_at:%H:%M:%S} UTC: {run.state}"
            for run in started))

    st.subheader("Recent runs")
    runs = data.job_runs()
    if runs.empty:
        st.info("No job runs yet. Start one below" + (", or `healthcare-mlops jobs run JOB`." if facts.task_history
                                                      else "."))
    else:
        succeeded = int((runs["status"] == "SUCCEEDED").sum())
        c1, c2, c3 = st.columns(3)
        c1.metric("Job runs", f"{len(runs):,}")
        c2.metric("Succeeded", f"{succeeded:,}")
        c3.metric("Not succeeded", f"{len(runs) - succeeded:,}")
        if runs["duration_seconds"].notna().any():
            ui.chart(charts.job_durations(runs.dropna(subset=["duration_seconds"])), "jobs_durations")
        shown = runs.assign(error=runs["error"].map(
            lambda e: e.strip().splitlines()[0][:160] if isinstance(e, str) and e.strip() else ""))
        ui.table(shown, key="jobs_runs", wide=("error",))
        if facts.task_history:
            labels = {int(r.run_id): f"{r.job_key} · {r.start_time:%Y-%m-%d %H:%M:%S} · {r.status}"
                      for r in runs.head(50).itertuples()}
            run_id = st.selectbox("Tasks of run", list(labels), format_func=labels.get, key="jobs_run_detail")
            ui.table(data.task_runs(run_id), key="jobs_tasks", wide=("error",))
    _run_now(ui.identity(), jobs)


with ui.guard():
    render()
