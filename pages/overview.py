"""Overview: the last scored batch, its category mix, the champion, open alerts, the last job runs."""

import streamlit as st

from app import charts, data, ui
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
        counts = data.category_counts(scoring_date)
        left, right = st.columns([3, 2])
        ui.chart(charts.category_bar(counts), "overview_categories", where=left)
        with right:
            ui.table(counts.rename(columns={"risk_category": "category"}), key="overview_category_table")

    st.subheader("Last job runs")
    runs = data.job_runs()
    if runs.empty:
        if data.facts().task_history and not data.has_table(T.JOB_RUNS):
            st.info("No job has run on this lakehouse yet. Jobs page: Run now, or `healthcare-mlops jobs run JOB`.")
        else:
            st.info("No job runs yet.")
    else:
        latest = runs.drop_duplicates("job_key").head(10)
        ui.table(latest[["job_key", "status", "trigger", "start_time", "duration_seconds"]], key="overview_runs")


with ui.guard():
    render()
