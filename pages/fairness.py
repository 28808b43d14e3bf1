"""Fairness: per-group metrics of the monitored batches against the thresholds, latest and over time.

The verdicts are the ones the model_monitoring run recorded (``ml_drift_metrics``: MAE
ratio, worst calibration and the four-fifths ratio per group column, judged in
``monitoring/evaluation.py`` with the bundle's thresholds), so this page and the alerts
never disagree.
"""

import streamlit as st

from app import charts, data, ui
from app.vocabulary import ALERT, FAIRNESS_GROUPS, OK, MonitoringThresholds

METRICS = {"calibration_ratio": "mean predicted / mean actual", "mae": "MAE (USD)",
           "critical_share": "share flagged critical", "risk_score_mae": "risk-score MAE"}


def render() -> None:
    st.title("Fairness")
    settings = data.console_settings()
    t = MonitoringThresholds.from_variables(settings.variables)
    st.caption(f"Thresholds (bundle variables): MAE ratio max/min <= {t.fairness_mae_ratio_max:g}; calibration "
               f"{t.calibration_ratio_min:g}-{t.calibration_ratio_max:g}; groups judged from n >= "
               f"{t.fairness_min_group_size}; four-fifths ratio of the share flagged critical by sex >= "
               f"{t.four_fifths_min:g} (a flag, not a verdict).")
    runs = data.query("fairness_runs")
    if runs.empty:
        ui.empty_state("fairness metrics", "model_monitoring",
                       extra="Monitoring needs a scored batch first (batch_inference).")
        return

    labels = {f"{r.window_start} .. {r.window_end} (run {r.run_id})": r.run_id for r in runs.itertuples()}
    chosen = st.selectbox("Monitoring run", list(labels), key="fairness_run")
    latest = data.query("fairness_for_run", run_id=labels[chosen])

    verdicts = data.query("fairness_checks_for_run", run_id=labels[chosen])
    st.subheader("Checks")
    if verdicts.empty:
        st.info("No performance metrics in this run yet: they need the members' actual charges, which "
                "monitoring joins once they arrive.")
    else:
        passed, failed = st.columns(2)
        passed.metric("Checks passed", f"{int((verdicts['status'] == OK).sum())} of {len(verdicts)}")
        failed.metric("Checks failed", f"{int((verdicts['status'] == ALERT).sum())}")
        st.dataframe(verdicts, hide_index=True, key="fairness_checks")
        st.caption("alert: a fairness alert was raised; flag: the four-fifths ratio is low (a flag, not a "
                   "verdict); insufficient_data: fewer than two groups large enough to compare.")

    st.subheader("Per group")
    table = latest.assign(judged=latest["n"] >= t.fairness_min_group_size,
                          calibration_ok=latest["calibration_ratio"].between(t.calibration_ratio_min,
                                                                             t.calibration_ratio_max))
    st.dataframe(table, hide_index=True, key="fairness_groups",
                 column_config={"n": st.column_config.NumberColumn(format="localized"),
                                "mae": st.column_config.NumberColumn(format="dollar"),
                                "critical_share": st.column_config.NumberColumn(format="percent")})
    columns = [c for c in FAIRNESS_GROUPS if c in set(latest["group_column"])] + \
        sorted(set(latest["group_column"]) - set(FAIRNESS_GROUPS))
    if not columns:
        return
    column = st.radio("Group", columns, horizontal=True, format_func=lambda c: c.replace("_", " "),
                      key="fairness_group")
    groups = latest[latest["group_column"] == column]
    left, right = st.columns(2)
    left.plotly_chart(charts.group_metric_bars(groups, "calibration_ratio", f"Calibration by {column}",
                                               t.calibration_ratio_min, t.calibration_ratio_max),
                      key="fairness_calibration")
    right.plotly_chart(charts.group_metric_bars(groups, "critical_share", f"Share flagged critical by {column}"),
                       key="fairness_critical")

    st.subheader("Over time")
    history = data.query("fairness_history")
    metric = st.radio("Metric", list(METRICS), format_func=METRICS.get, horizontal=True,
                      key="fairness_history_metric")
    part = history[history["group_column"] == column]
    band = (t.calibration_ratio_min, t.calibration_ratio_max) if metric == "calibration_ratio" else (None, None)
    if part[metric].notna().any():
        st.plotly_chart(charts.metric_over_time(part, metric, f"{METRICS[metric]} by {column}", *band),
                        key="fairness_over_time")
    else:
        st.info(f"No {METRICS[metric]} recorded for {column} yet.")


with ui.guard():
    render()
