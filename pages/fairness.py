"""Fairness: a monitoring run's fairness verdicts on arrival; as views picked when wanted, its groups' metrics
(calibration drawn relative to everyone else), each metric over time and the champion's governance verdicts.

The champion's checks come from governance (out-of-fold predictions of every training
member, bootstrap intervals, verdicts in words). The batch verdicts are the ones the
model_monitoring run recorded (``ml_drift_metrics``: scale-aware error ratio, worst
calibration relative to everyone else and the four-fifths ratio per group column, judged
in ``monitoring/performance.py`` with the bundle's thresholds), so this page and the alerts
never disagree.
"""

import pandas as pd
import streamlit as st

from app import charts, data, ui
from app.vocabulary import ALERT, ALL_GROUP, FAIRNESS_GROUPS, FLAG, OK, in_words, monitoring_thresholds

METRICS = {"relative_calibration": "mean predicted / mean actual relative to everyone else",
           "calibration_ratio": "mean predicted / mean actual", "mae": "MAE (USD)",
           "critical_share": "share flagged critical", "risk_score_mae": "risk-score MAE"}


def _champion_checks(**_) -> None:
    """The champion's fairness verdicts from governance, each with its interval and in words."""
    registry = data.registry()
    champion = registry.get("champion")
    checks = [c for c in data.checks_by_version(registry["model_name"]).get(str(champion), [])
              if c["name"].startswith(("calibration_", "fairness_", "critical_share"))] \
        if registry["exists"] and champion is not None else []
    if not checks:
        st.info("No champion with governance checks yet: " + data.run_hint("model_governance")
                + " validates a version.")
        return
    st.subheader(f"Champion (version {champion}): governance checks")
    st.caption("Out-of-fold predictions of every training member; sex is protected (hard checks), the rest are "
               "rating factors (reported, never blocking). A check fails only when its whole interval is beyond "
               "the threshold.")
    ui.table(pd.DataFrame([{
        "check": c["name"], "group": c.get("group") or "", "value": c["value"],
        "interval": ui.interval(c.get("interval")),
        "threshold": c.get("threshold") or "not set", "verdict": c["verdict"], "what it means": in_words(c)}
        for c in checks]), key="fairness_champion_checks", wide=("what it means",), lines=3)


def _no_fairness_yet() -> None:
    """The real cause: monitoring never ran, or it ran and no scored member's actual charges have arrived."""
    monitored = data.query("composite_drift")
    if monitored.empty:
        ui.empty_state("fairness metrics", "model_monitoring",
                       extra="Monitoring needs a scored batch first (batch_inference).")
        return
    last = monitored["window_end"].max()
    st.info(f"**No fairness metrics yet: no actual charges have arrived for the scored members.** Monitoring "
            f"has run ({len(monitored):,} runs, the last for the window ending {last}), but fairness compares a "
            "batch scored on one day with the charges a later member load delivers for those members. Load the "
            f"later member file ({ui.command('data ingest FILE.csv --as-of YYYY-MM-DD', 'load_members')}, "
            "a date after the "
            f"scored batch), then run {data.run_hint('feature_engineering')}, {data.run_hint('batch_inference')} "
            f"and {data.run_hint('model_monitoring')}.")


def _per_group(latest: pd.DataFrame, t) -> pd.DataFrame:
    """The run's groups as a table (the whole batch as a caption: it has nothing to be relative to, so its
    row would be blanks); returns the groups without the whole batch."""
    # relative_calibration is the number the band judges (monitoring stores it beside the group's own ratio).
    whole = latest[latest["group_column"] == ALL_GROUP]
    latest = latest[latest["group_column"] != ALL_GROUP]
    groups_table = latest.assign(judged=latest["n"] >= t.fairness_min_group_size)
    ui.table(groups_table[["group_column", "group_value", "n", "critical_share", "relative_calibration",
                           "calibration_ratio", "mae", "risk_score_mae", "judged"]], key="fairness_groups")
    if not whole.empty and pd.notna(whole["calibration_ratio"].iloc[0]):
        st.caption(f"Whole batch: {int(whole['n'].iloc[0]):,} members, mean predicted / mean actual "
                   f"{whole['calibration_ratio'].iloc[0]:.3f} (judged as performance, on the Drift page).")
    return latest


def _thresholds(t) -> str:
    return (f"Thresholds (bundle variables): error relative to mean charges, max/min <= {t.fairness_mae_ratio_max:g}; "
            f"mean predicted / mean actual relative to everyone else {t.calibration_ratio_min:g}-"
            f"{t.calibration_ratio_max:g}; groups judged from n >= {t.fairness_min_group_size}; four-fifths ratio "
            f"of the share flagged critical by sex >= {t.four_fifths_min:g} (a flag, not a verdict).")


def _checks(verdicts: pd.DataFrame, t, **_) -> None:
    """The run's verdicts, with the thresholds and what each status means in one caption."""
    if verdicts.empty:
        st.caption(_thresholds(t))
        return
    ui.table(verdicts.assign(threshold=ui.thresholds_in_words(verdicts["metric"], verdicts["threshold"])),
             key="fairness_checks")
    st.caption("alert: a fairness alert was raised (sex, the protected attribute); flag: a rating factor "
               "(age band, region) beyond its threshold, or the four-fifths ratio is low (reported, not a "
               "verdict); insufficient_data: fewer than two groups large enough to compare. " + _thresholds(t))


def _group_column(latest: pd.DataFrame) -> str | None:
    """The group column to draw, picked by the user (the registry's order first)."""
    present = set(latest["group_column"]) - {ALL_GROUP}
    columns = [c for c in FAIRNESS_GROUPS if c in present] + sorted(present - set(FAIRNESS_GROUPS))
    if not columns:
        return None
    return st.radio("Group", columns, horizontal=True, format_func=lambda c: c.replace("_", " "),
                    key="fairness_group")


def _groups(latest: pd.DataFrame, t, **_) -> None:
    """The run's groups as a table, and one group column's calibration and critical share as bars."""
    latest = _per_group(latest, t)
    column = _group_column(latest)
    if column is None:
        return
    groups = latest[latest["group_column"] == column]
    left, right = st.columns(2)
    # The bars are the quantity the check judges, against the check's band: a bar is inside the band
    # exactly when the group passes (groups too small to judge are drawn but not judged).
    ui.chart(charts.calibration_bars, groups, column, t.calibration_ratio_min, t.calibration_ratio_max,
             key="fairness_calibration", where=left)
    left.caption("Each group's mean predicted / mean actual divided by everyone else's: an overall shift "
                 "(judged as performance, Drift page) moves every group alike and leaves these bars at 1.")
    ui.chart(charts.group_metric_bars, groups, "critical_share", f"Share flagged critical by {column}",
             key="fairness_critical", where=right)


def _over_time(latest: pd.DataFrame, t, **_) -> None:
    """One group column's metric across the monitoring runs."""
    column = _group_column(latest)
    if column is None:
        return
    history = data.query("fairness_history")
    metric = st.radio("Metric", list(METRICS), format_func=METRICS.get, horizontal=True,
                      key="fairness_history_metric")
    part = history[history["group_column"] == column]
    if part["window_end"].nunique() == 1:
        st.caption(f"One monitoring run so far ({part['window_end'].iloc[0]}): one point per group; the lines "
                   "start with the second run.")
    if part[metric].notna().any():
        band = (t.calibration_ratio_min, t.calibration_ratio_max) if metric == "relative_calibration" else ()
        ui.chart(charts.metric_over_time, part, metric, f"{METRICS[metric]} by {column}", *band,
                 key="fairness_over_time")
    else:
        st.info(f"No {METRICS[metric]} recorded for {column} yet.")


# The run's verdicts on arrival; the groups, the history and the champion's checks when asked for.
VIEWS = {"Checks": _checks, "Per group": _groups, "Over time": _over_time,
         "Champion's governance checks": _champion_checks}


def render() -> None:
    st.title("Fairness")
    t = monitoring_thresholds(data.console_settings().variables)
    runs = data.query("fairness_runs")
    if runs.empty:
        if data.registry().get("champion") is not None:
            _champion_checks()
        st.caption(_thresholds(t))
        _no_fairness_yet()
        return

    labels = {f"{r.window_start} .. {r.window_end} (run {r.run_id})": r.run_id for r in runs.itertuples()}
    chosen = st.selectbox("Monitoring run", list(labels), key="fairness_run")
    verdicts = data.query("fairness_checks_for_run", run_id=labels[chosen])
    if verdicts.empty:
        st.info("No performance metrics in this run yet: they need the members' actual charges, which "
                "monitoring joins once they arrive.")
    else:
        passed, flagged, failed = st.columns(3)
        status = verdicts["status"]
        passed.metric("Checks passed", f"{int((status == OK).sum())} of {len(verdicts)}")
        flagged.metric("Flagged (reported, never blocks)", f"{int((status == FLAG).sum())}")
        failed.metric("Alerts (sex, protected)", f"{int((status == ALERT).sum())}")
        if (others := int((~status.isin([OK, FLAG, ALERT])).sum())):
            st.caption(f"{others} of {len(verdicts)} not judged: too few members in a group.")
    view, shown = ui.views("Show", list(VIEWS), key="fairness_view")
    with shown:
        VIEWS[view](verdicts=verdicts, latest=data.query("fairness_for_run", run_id=labels[chosen]), t=t)


with ui.guard():
    render()
