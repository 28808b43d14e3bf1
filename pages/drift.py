"""Drift: the latest composite drift and the alerts (Acknowledge) on arrival; as views picked when wanted, the
composite drift score over time, PSI per feature across runs, batch and real-time traffic side by side, the
label-free MAE estimate against the realised MAE, and every metric of the latest run."""

import pandas as pd
import streamlit as st

from app import actions, auth, charts, data, ui
from app.vocabulary import REALTIME_PREFIX, monitoring_thresholds

SIDE_BY_SIDE = ("psi", "js_distance", "ks_statistic", "wasserstein_norm", "composite_drift", "volume")


def _side_by_side(metrics: pd.DataFrame) -> None:
    """The latest run's batch metrics next to the same metrics of the window's real-time requests."""
    realtime = metrics[metrics["metric"].str.startswith(REALTIME_PREFIX)]
    value = dict(zip(realtime["metric"].str.removeprefix(REALTIME_PREFIX), realtime["value"]))
    if not value.get("request_volume"):
        st.info("No real-time requests in this window. `healthcare-mlops serve` logs each request it answers "
                "(serving_payload); on Databricks the endpoint's inference table does.")
        return
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Real-time requests", f"{int(value['request_volume']):,}")
    c2.metric("Error rate", f"{value['error_rate']:.1%}")
    c3.metric("Latency p95", f"{value['latency_p95_ms']:.0f} ms",
              help=f"p50 {value['latency_p50_ms']:.0f} ms, p99 {value['latency_p99_ms']:.0f} ms")
    c4.metric("Real-time composite drift", ui.number(value.get("composite_drift")))
    keys = ["column_name", "metric"]
    batch = metrics[metrics["metric"].isin(SIDE_BY_SIDE)][[*keys, "value", "threshold", "status"]]
    live = realtime.assign(metric=realtime["metric"].str.removeprefix(REALTIME_PREFIX))
    live = live[live["metric"].isin(SIDE_BY_SIDE)][[*keys, "value", "status"]]
    both = batch.merge(live, on=keys, how="outer", suffixes=("_batch", "_realtime"))
    both = both.rename(columns={"column_name": "column", "value_batch": "batch", "value_realtime": "real-time",
                                "status_batch": "batch status", "status_realtime": "real-time status"})
    ui.table(both[["column", "metric", "batch", "real-time", "threshold", "batch status", "real-time status"]],
             key="drift_side_by_side")


def _estimated_performance(metrics: pd.DataFrame) -> None:
    """The latest run's label-free MAE and risk-score MAE estimates with their intervals (or why
    there are none), and the estimate against the realised MAE over time."""
    st.caption("Estimated before the members' actual charges arrive.")
    window = metrics[metrics["column_name"] == ""].set_index("metric")
    cards = st.columns(2)
    for card, (metric, label, fmt) in zip(cards, (("estimated_mae", "Estimated MAE", "{:,.0f} USD"),
                                                  ("estimated_risk_score_mae", "Estimated risk-score MAE",
                                                   "{:.1f}"))):
        if metric not in window.index:
            card.metric(label, "not computed")
        elif window.loc[metric, "status"] == "unavailable":
            card.metric(label, "unavailable")
            card.caption(str(window.loc[metric, "group_value"]))
        else:
            lower, upper = (window.loc[f"{metric}_{side}", "value"] for side in ("lower", "upper"))
            card.metric(label, fmt.format(window.loc[metric, "value"]),
                        help="Direct Loss Estimation: a model of the absolute error learnt on held-out "
                             "labelled rows (docs/definitions.md); it cannot see a change in the price level.")
            card.caption(f"interval {fmt.format(lower)} to {fmt.format(upper)}")
    history = data.query("estimated_mae_history")
    if not history.empty and history["value"].notna().any():
        ui.chart(charts.estimated_mae, history, key="drift_estimated_mae")


def _alerts() -> None:
    state = st.radio("Show", ["open", "all"], horizontal=True, key="alerts_state",
                     format_func=lambda s: "Open" if s == "open" else "All")
    alerts = data.query("alerts", state=state)
    if alerts.empty:
        st.success("No open alerts." if state == "open" else "No alerts so far.")
        return
    shown = alerts.assign(threshold=ui.thresholds_in_words(alerts["alert_type"], alerts["threshold"],
                                                            missing="see the message"),
                          acknowledged=[f"by {who}, {ui.timestamp(when, zone=False)}" if isinstance(who, str) and who
                                        else "no" for who, when in zip(alerts["acknowledged_by"],
                                                                       alerts["acknowledged_at"])])
    # the decision columns (value, threshold, acknowledged, retrain run) before the long message: in view at 1440 px
    ui.table(shown[["created_at", "severity", "alert_type", "value", "threshold", "acknowledged", "retrain_run_id",
                    "message", "column_name", "acknowledged_comment", "alert_id"]],
             key="alerts_table", wide=("message",), lines=3)


def _acknowledge(identity) -> None:
    """Acknowledge an open alert, with an optional comment: who and when are recorded."""
    open_alerts = data.query("alerts", state="open")
    if open_alerts.empty:
        st.success("No open alerts.")
        return
    if not auth.can(identity, "acknowledge"):
        st.caption(f"Acknowledging an alert needs the operator role; you are {identity.role}.")
        return
    labels = {r.alert_id: f"{r.severity} · {r.alert_type} · {r.message}" for r in open_alerts.itertuples()}
    pick, note = st.columns([3, 2])
    chosen = pick.selectbox("Alert", list(labels), format_func=labels.get, key="ack_alert")
    pick.caption(labels[chosen])                        # the whole message: the box above may cut it
    comment = note.text_input("Comment (optional)", key="ack_comment")
    if st.button("Acknowledge", key="ack_button", type="primary"):
        with ui.guard():
            actions.acknowledge(identity, chosen, comment or None)
            st.session_state["ack_message"] = f"Acknowledged by {identity.user}: {labels[chosen]}"
            st.rerun()


def _composite(composite: pd.DataFrame, t, **_) -> None:
    ui.chart(charts.composite_drift, composite, t.composite_drift_alert, key="drift_composite")


def _psi(t, **_) -> None:
    """PSI per feature across the last 30 runs, a run's repeated window told apart by its id."""
    psi = data.query("psi_history")
    if psi.empty:
        st.info("No PSI recorded yet.")
        return
    runs = psi.drop_duplicates("run_id")[["run_id", "window_end"]].tail(30)
    psi = psi[psi["run_id"].isin(runs["run_id"])]
    labels = runs.assign(run_label=runs["window_end"].astype(str))
    repeated = labels["run_label"].duplicated(keep=False)
    labels.loc[repeated, "run_label"] += " #" + labels.loc[repeated, "run_id"].astype(str).str[-6:]
    psi = psi.merge(labels[["run_id", "run_label"]], on="run_id")
    ui.chart(charts.psi_heatmap, psi, t.psi_moderate, t.psi_significant, key="drift_psi")


def _every_metric(metrics: pd.DataFrame, **_) -> None:
    ui.table(metrics.assign(threshold=ui.thresholds_in_words(metrics["metric"], metrics["threshold"])),
             key="drift_latest_metrics")


# The alerts (what needs acting on) on arrival; acknowledging one, the history, the features and the latest
# run's metrics when asked for. Before any monitoring run only the alerts are there to show.
VIEWS = {"Alerts": lambda **_: _alerts(), "Acknowledge an alert": lambda **_: _acknowledge(ui.identity()),
         "Composite drift over time": _composite,
         "PSI per feature": _psi, "Batch and real-time traffic": lambda metrics, **_: _side_by_side(metrics),
         "Estimated performance": lambda metrics, **_: _estimated_performance(metrics),
         "Every metric of the latest run": _every_metric}


def render() -> None:
    st.title("Drift")
    if message := st.session_state.pop("ack_message", None):
        st.success(message)
    # the jobs' thresholds, from the same bundle variables; a missing one fails loudly
    t = monitoring_thresholds(data.console_settings().variables)
    composite = data.query("composite_drift")
    if composite.empty:
        ui.empty_state("drift metrics", "model_monitoring",
                       extra="Monitoring compares the latest scored batch (batch_inference) with the training data.")
        _alerts()
        return
    latest = composite.iloc[-1]
    c1, c2, c3 = st.columns(3)
    c1.metric("Composite drift (latest)", ui.number(latest["value"]),
              help=f"Share of feature importance on inputs with PSI >= {t.psi_moderate:g}; alert above "
                   f"{t.composite_drift_alert:g}")
    c2.metric("Latest window", str(latest["window_end"]),
              help=f"Scored batches from {latest['window_start']} to {latest['window_end']}")
    c3.metric("Monitoring runs", f"{len(composite):,}")
    view, shown = ui.views("Show", list(VIEWS), key="drift_view")
    with shown:
        VIEWS[view](composite=composite, t=t,
                    metrics=data.query("drift_run_metrics", run_id=str(latest["run_id"])))


with ui.guard():
    render()
