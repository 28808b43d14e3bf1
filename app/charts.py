"""Figure builders: a small, already aggregated DataFrame in, a plotly figure out. No I/O here."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from healthcare_mlops.modeling.risk import RISK_CATEGORIES

CATEGORY_ORDER = [label for _, label in RISK_CATEGORIES]
CATEGORY_COLORS = {"low": "#2e7d32", "medium": "#f9a825", "high": "#ef6c00", "critical": "#c62828"}
STATUS_COLORS = {"SUCCEEDED": "#2e7d32", "FAILED": "#c62828", "TIMED_OUT": "#c62828", "CANCELED": "#757575",
                 "UPSTREAM_FAILED": "#ef6c00", "EXCLUDED": "#9e9e9e", "INTERRUPTED": "#c62828"}
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=340, template="plotly_white")


def _category_of(score: float) -> str:
    label = CATEGORY_ORDER[0]
    for lower, name in RISK_CATEGORIES:
        if score >= lower:
            label = name
    return label


def category_bar(counts: pd.DataFrame, title: str = "Members per risk category") -> go.Figure:
    """``risk_category, members, share`` -> horizontal bars in category order."""
    frame = counts.set_index("risk_category").reindex(CATEGORY_ORDER).fillna(0).reset_index()
    fig = go.Figure(go.Bar(
        x=frame["members"], y=frame["risk_category"], orientation="h",
        marker_color=[CATEGORY_COLORS[c] for c in frame["risk_category"]],
        text=[f"{int(n):,} ({s:.1%})" for n, s in zip(frame["members"], frame.get("share", frame["members"] * 0))],
        textposition="auto"))
    fig.update_layout(title=title, yaxis=dict(categoryorder="array", categoryarray=CATEGORY_ORDER[::-1]),
                      xaxis_title="members", **_LAYOUT)
    return fig


def risk_histogram(bins: pd.DataFrame, bin_width: int) -> go.Figure:
    """``bin_index, members`` (bins of ``bin_width`` points) -> bars coloured by risk category."""
    full = pd.DataFrame({"bin_index": range(100 // bin_width)})
    frame = full.merge(bins, on="bin_index", how="left").fillna({"members": 0})
    starts = frame["bin_index"] * bin_width
    fig = go.Figure(go.Bar(
        x=starts + bin_width / 2, y=frame["members"], width=bin_width * 0.95,
        marker_color=[CATEGORY_COLORS[_category_of(s)] for s in starts],
        hovertemplate="score %{customdata}<br>%{y:,} members<extra></extra>",
        customdata=[f"{s}-{s + bin_width}" for s in starts]))
    for lower, name in RISK_CATEGORIES[1:]:
        fig.add_vline(x=lower, line_dash="dot", line_color="#555", annotation_text=name,
                      annotation_position="top")
    fig.update_layout(title="Risk-score distribution", xaxis=dict(title="risk score", range=[0, 100]),
                      yaxis_title="members", bargap=0, **_LAYOUT)
    return fig


def category_mix(mix: pd.DataFrame, dimension: str) -> go.Figure:
    """``dimension, dimension_value, risk_category, members`` -> 100 % stacked bars for one dimension."""
    frame = mix[mix["dimension"] == dimension]
    totals = frame.groupby("dimension_value")["members"].transform("sum")
    frame = frame.assign(share=frame["members"] / totals)
    values = sorted(frame["dimension_value"].astype(str).unique())
    fig = go.Figure()
    for category in CATEGORY_ORDER:
        part = frame[frame["risk_category"] == category].set_index("dimension_value").reindex(values)
        fig.add_trace(go.Bar(name=category, x=values, y=part["share"].fillna(0),
                             marker_color=CATEGORY_COLORS[category],
                             customdata=part["members"].fillna(0),
                             hovertemplate="%{x}: %{y:.1%} (%{customdata:,} members)<extra>" + category + "</extra>"))
    fig.update_layout(barmode="stack", title=f"Risk categories by {dimension.replace('_', ' ')}",
                      yaxis=dict(title="share of members", tickformat=".0%"), legend_title="category", **_LAYOUT)
    return fig


def group_metric_bars(groups: pd.DataFrame, metric: str, title: str, low: float | None = None,
                      high: float | None = None) -> go.Figure:
    """``group_value, <metric>`` for one group column -> bars with the threshold band as lines."""
    fig = go.Figure(go.Bar(x=groups["group_value"].astype(str), y=groups[metric], marker_color="#1565c0",
                           hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
    for bound in (low, high):
        if bound is not None:
            fig.add_hline(y=bound, line_dash="dash", line_color="#c62828", annotation_text=f"{bound:g}")
    fig.update_layout(title=title, yaxis_title=metric.replace("_", " "), **_LAYOUT)
    return fig


def metric_over_time(history: pd.DataFrame, metric: str, title: str, low: float | None = None,
                     high: float | None = None) -> go.Figure:
    """``window_end, group_value, <metric>`` -> one line per group."""
    fig = go.Figure()
    for value, part in history.sort_values("window_end").groupby("group_value", sort=True):
        fig.add_trace(go.Scatter(x=part["window_end"], y=part[metric], mode="lines+markers", name=str(value),
                                 marker=dict(size=9)))          # a single run still reads as a point
    for bound in (low, high):
        if bound is not None:
            fig.add_hline(y=bound, line_dash="dash", line_color="#c62828", annotation_text=f"{bound:g}")
    fig.update_layout(title=title, yaxis_title=metric.replace("_", " "), xaxis=date_axis(history["window_end"]),
                      **_LAYOUT)
    return fig


def date_axis(dates: pd.Series, title: str = "window end") -> dict:
    """An x axis of whole days: with one or few dates plotly would otherwise zoom to milliseconds."""
    days = pd.to_datetime(pd.Series(dates)).dt.normalize().dropna()
    axis = dict(title=title, type="date", tickformat="%Y-%m-%d", dtick=86_400_000)
    if len(days):
        low, high = days.min() - pd.Timedelta(days=1), days.max() + pd.Timedelta(days=1)
        axis["range"] = [low.strftime("%Y-%m-%d"), high.strftime("%Y-%m-%d")]
        if (high - low).days > 14:
            axis.pop("dtick")
    return axis


def composite_drift(history: pd.DataFrame, threshold: float) -> go.Figure:
    """``window_end, value`` per monitoring run -> a line with the alert threshold."""
    frame = history.sort_values(["window_end", "computed_at"]) if "computed_at" in history else history
    fig = go.Figure(go.Scatter(x=frame["window_end"], y=frame["value"], mode="lines+markers",
                               name="composite drift", line_color="#1565c0",
                               hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.add_hline(y=threshold, line_dash="dash", line_color="#c62828", annotation_text=f"alert > {threshold:g}")
    top = max(1.0, float(frame["value"].max()) if len(frame) else 1.0)
    fig.update_layout(title="Composite drift score (share of feature importance drifting)",
                      xaxis_title="window end", yaxis=dict(title="score", range=[0, top]), **_LAYOUT)
    return fig


def psi_heatmap(psi: pd.DataFrame, moderate: float = 0.1, significant: float = 0.25) -> go.Figure:
    """``run_label, column_name, value`` -> features x runs, coloured by the PSI bands."""
    table = psi.pivot_table(index="column_name", columns="run_label", values="value", aggfunc="last", sort=False)
    top = max(significant * 2, float(psi["value"].max()) if len(psi) else significant * 2)
    scale = [[0.0, "#e8f5e9"], [moderate / top, "#c8e6c9"], [moderate / top, "#fff59d"],
             [significant / top, "#ffcc80"], [significant / top, "#ef9a9a"], [1.0, "#b71c1c"]]
    fig = go.Figure(go.Heatmap(z=table.to_numpy(), x=[str(c) for c in table.columns], y=list(table.index),
                               zmin=0, zmax=top, colorscale=scale, colorbar=dict(title="PSI"),
                               text=[[f"{v:.3f}" if pd.notna(v) else "" for v in row] for row in table.to_numpy()],
                               texttemplate="%{text}", hovertemplate="%{y} @ %{x}: PSI %{z:.3f}<extra></extra>"))
    fig.update_layout(title=f"PSI per feature and run (stable < {moderate:g} <= moderate < {significant:g} "
                            "<= significant)", xaxis_title="monitoring run (window end)",
                      **{**_LAYOUT, "height": max(300, 40 * len(table.index) + 120)})
    return fig


def job_durations(runs: pd.DataFrame) -> go.Figure:
    """``job_key, start_time, duration_seconds, status`` -> duration of each run over time."""
    fig = go.Figure()
    for job_key, part in runs.sort_values("start_time").groupby("job_key", sort=True):
        fig.add_trace(go.Scatter(
            x=part["start_time"], y=part["duration_seconds"], mode="lines+markers", name=str(job_key),
            marker=dict(color=[STATUS_COLORS.get(str(s), "#1565c0") for s in part["status"]], size=9,
                        line=dict(width=1, color="#333")),
            customdata=part["status"], hovertemplate="%{x}<br>%{y:.1f} s, %{customdata}<extra>" + str(job_key)
                                                     + "</extra>"))
    fig.update_layout(title="Job run durations (marker colour: status)", xaxis_title="started",
                      yaxis_title="seconds", **_LAYOUT)
    return fig


def member_waterfall(member: dict) -> go.Figure:
    """One member's explanation: base -> each input -> (minimum charge floor) -> predicted charges.

    ``member`` holds the five inputs and the explanation columns (a predictions row, or a
    real-time answer with reasons); the steps come from ``explanations.reasons.waterfall_steps``.
    """
    from healthcare_mlops.explanations.reasons import waterfall_steps
    from healthcare_mlops.features.definitions import MODEL_INPUT_COLUMNS

    steps = waterfall_steps(member, MODEL_INPUT_COLUMNS)
    fig = go.Figure(go.Waterfall(
        x=steps["label"], y=steps["usd"], measure=steps["kind"], orientation="v",
        text=[f"{v:+,.0f}" if kind == "relative" else f"{v:,.0f}" for v, kind in zip(steps["usd"], steps["kind"])],
        textposition="outside", increasing=dict(marker_color=CATEGORY_COLORS["critical"]),
        decreasing=dict(marker_color=CATEGORY_COLORS["low"]), totals=dict(marker_color="#1565c0"),
        hovertemplate="%{x}: %{y:,.0f} USD<extra></extra>"))
    fig.update_layout(title="Why this prediction: base, each input, prediction (USD)", yaxis_title="USD",
                      showlegend=False, **_LAYOUT)
    return fig


def importance_bars(importance: pd.DataFrame) -> go.Figure:
    """``input, version, usd`` -> grouped bars: each version's mean |contribution| per input."""
    fig = go.Figure()
    for version, part in importance.groupby("version", sort=False):
        fig.add_trace(go.Bar(name=str(version), x=part["input"], y=part["usd"],
                             hovertemplate="%{x}: %{y:,.0f} USD<extra>" + str(version) + "</extra>"))
    fig.update_layout(barmode="group", title="Global importance: mean |contribution| per input (USD)",
                      yaxis_title="USD", legend_title="version", **_LAYOUT)
    return fig
