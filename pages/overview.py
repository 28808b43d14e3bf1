"""Overview: the last scored batch, its category counts, the champion, open alerts, the last job runs."""

import pandas as pd
import streamlit as st

from app import data, ui
from app.vocabulary import AlertSeverity
from app.vocabulary import tables as T


def render() -> None:
    st.title("Overview")
    scoring_date = data.latest_scoring_date()
    registry = data.registry()
    alerts = data.open_alert_counts()
    summary = data.query("batch_summary", scoring_date=scoring_date).iloc[0] if scoring_date else None

    members, champion, open_alerts, review = st.columns(4)
    members.metric("Members scored", ui.count(summary["members"]) if summary is not None else "—",
                   help="Members in the last scored batch" + (f" ({scoring_date})" if scoring_date else ""))
    review.metric("Flagged for review", ui.count(summary["review"]) if summary is not None else "—")
    if registry["champion"] is not None:
        versions = registry["versions"]
        row = versions[versions["version"] == registry["champion"]]
        registered = row["registered"].iloc[0] if not row.empty else None
        champion.metric("Champion version", str(registry["champion"]),
                        help="The registered model version with alias 'champion'")
        champion.caption(f"registered {ui.ago(registered)}")
    else:
        champion.metric("Champion version", "none")
    critical = alerts.get(AlertSeverity.CRITICAL.value, 0)
    open_alerts.metric("Open alerts", f"{sum(alerts.values()):,}",
                       help="Alerts nobody has acknowledged yet (Drift page)")
    if critical:
        open_alerts.caption(f":red[{critical} critical]")

    if registry["champion"] is None:
        ui.empty_state("champion model", "ml_training_pipeline",
                       extra="It trains a challenger and promotes it when it passes governance.")
    if scoring_date is None:
        ui.empty_state("scored batch", "batch_inference")
    else:
        st.subheader(f"Last batch: {scoring_date}")
        st.caption(f"model version {summary['model_version']} · scored {ui.ago(summary['scored_at'])} · "
                   f"mean predicted charges {ui.usd(summary['mean_predicted'])}")
        _why_another_version(summary, registry)
        # the counts and shares as a table, without a chart of the same numbers: a chart is the costliest
        # element a new tab draws (benchmarks/README.md, issue 29); Risk draws the mix by any rating factor
        ui.table(data.category_counts(scoring_date).rename(columns={"risk_category": "category"}),
                 key="overview_category_table")

    st.subheader("Last job runs")
    runs = data.job_runs()
    if runs.empty:
        if data.facts().task_history and not data.has_table(T.JOB_RUNS):
            st.info(f"No job has run on this lakehouse yet. Jobs page: Run now, or {data.run_hint('JOB')}.")
        else:
            st.info("No job runs yet.")
    else:
        latest = runs.drop_duplicates("job_key").head(10)
        ui.table(latest[["job_key", "status", "trigger", "start_time", "duration_seconds"]], key="overview_runs")


def _utc(moment) -> pd.Timestamp:
    moment = pd.Timestamp(moment)
    return moment.tz_convert("UTC") if moment.tzinfo else moment.tz_localize("UTC")


def _why_another_version(summary, registry: dict) -> None:
    """A batch scored by a version that is not the champion: say why, and what scores with the champion."""
    scored_by, champion = str(summary["model_version"]), registry["champion"]
    if champion is None or scored_by == str(champion):
        return
    since = data.query("champion_since", model_name=registry["model_name"])
    row = since[since["version"].astype(str) == str(champion)] if not since.empty else since
    since = _utc(row["since"].iloc[0]) if len(row) else None
    scored = _utc(summary["scored_at"])
    after = since is not None and since > scored
    why = (f"version {champion} became champion after it, on {ui.timestamp(since)}" if after else
           f"it was not the champion then either (version {champion} is champion since "
           f"{ui.timestamp(since) if since is not None else 'an earlier promotion'}): the run named its version")
    st.caption(f"Why version {scored_by}: this batch was scored on {ui.timestamp(scored)}, and {why}. The next "
               f"{data.run_hint('batch_inference')} scores with the champion, version {champion}.")


with ui.guard():
    render()
