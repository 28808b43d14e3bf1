"""Chart builders: a small, already aggregated DataFrame in, a Vega-Lite (Altair) chart out. No I/O here.

Vega-Lite rather than plotly because of what a browser tab pays: Streamlit's plotly chunk is
4.7 MB of JavaScript that every new tab parses, Vega's 0.77 MB (a page with three small bar
charts drew in ~1.85 s with plotly, ~1.1 s with Vega-Lite, ~0.93 s without charts).
Every chart is drawn as SVG (``_finish``): the frames here are small, and SVG marks carry
the accessible labels the browser test counts.
"""

from __future__ import annotations

import hashlib
import threading

import altair as alt
import pandas as pd

from healthcare_mlops.modeling.risk import RISK_CATEGORIES, RiskBand

CATEGORY_ORDER = [label for _, label in RISK_CATEGORIES]
CATEGORY_COLORS = {RiskBand.LOW.value: "#2e7d32", RiskBand.MEDIUM.value: "#f9a825", RiskBand.HIGH.value: "#ef6c00",
                   RiskBand.CRITICAL.value: "#c62828"}
STATUS_COLORS = {"SUCCEEDED": "#2e7d32", "FAILED": "#c62828", "TIMED_OUT": "#c62828", "CANCELED": "#757575",
                 "UPSTREAM_FAILED": "#ef6c00", "EXCLUDED": "#9e9e9e", "INTERRUPTED": "#c62828"}
PSI_BANDS = ["stable", "moderate", "significant"]
PSI_COLORS = ("#c8e6c9", "#fff59d", "#ef9a9a")
LINE_COLOR = "#1565c0"
THRESHOLD_COLOR = "#c62828"
HEIGHT = 340                # pixels, title and axes included (Streamlit fits the whole chart into it)
CATEGORY_SCALE = alt.Scale(domain=CATEGORY_ORDER, range=[CATEGORY_COLORS[c] for c in CATEGORY_ORDER])


def _finish(chart, title: str):
    """The title, the height and the SVG renderer every chart shares."""
    return chart.properties(title=alt.Title(title, anchor="start"), height=HEIGHT,
                            usermeta={"embedOptions": {"renderer": "svg"}})


# Altair's theme and data transformer are process-wide settings: one conversion at a time.
_CONVERSION_LOCK = threading.Lock()


def vega_lite_spec(chart) -> dict:
    """``chart`` as the Vega-Lite spec ``st.altair_chart`` would send, as a plain dict that can be cached.

    As Streamlit does: Altair's default theme off (its fixed sizes fight the container's width) and each
    frame kept as a frame under a name made from its content (Streamlit sends it as Arrow, so dates stay
    instants instead of Altair's zone-less text, which a browser reads in its own time zone).
    """
    datasets: dict[str, pd.DataFrame] = {}

    def by_name(frame: pd.DataFrame) -> dict:
        digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).values.tobytes())
        digest.update(repr(list(frame.columns)).encode())
        name = f"data-{digest.hexdigest()[:20]}"
        datasets[name] = frame
        return {"name": name}

    alt.data_transformers.register("console_named_frames", by_name)
    with _CONVERSION_LOCK, alt.theme.enable("none"), alt.data_transformers.enable("console_named_frames"):
        spec = chart.to_dict()
    spec["datasets"] = {**spec.get("datasets", {}), **datasets}
    return spec


def _category_of(score: float) -> str:
    label = CATEGORY_ORDER[0]
    for lower, name in RISK_CATEGORIES:
        if score >= lower:
            label = name
    return label


def _threshold_rules(bounds: list[tuple[float, str]], title: str, axis: str = "y") -> alt.LayerChart:
    """Dashed rules at ``bounds`` (value, label) along ``axis``, each with its label; ``title`` is the
    axis title of the chart they join (Vega-Lite would join two different titles with a comma)."""
    frame = pd.DataFrame(bounds, columns=["bound", "label"])
    position = alt.X("bound:Q", title=title) if axis == "x" else alt.Y("bound:Q", title=title)
    base = alt.Chart(frame).encode(**{axis: position})
    rule = base.mark_rule(color=THRESHOLD_COLOR, strokeDash=[6, 4])
    if axis == "x":
        text = base.mark_text(align="left", baseline="top", dx=3, y=2, color="#555").encode(text="label:N")
    else:
        text = base.mark_text(align="right", baseline="bottom", dy=-2, x="width", color=THRESHOLD_COLOR)\
            .encode(text="label:N")
    return alt.layer(rule, text)


def _bound_rules(low: float | None, high: float | None, title: str) -> list:
    """The threshold band's rules, if there is a band."""
    bounds = [(b, f"{b:g}") for b in (low, high) if b is not None]
    return [_threshold_rules(bounds, title)] if bounds else []


def risk_histogram(bins: pd.DataFrame, bin_width: int) -> alt.LayerChart:
    """``bin_index, members`` (bins of ``bin_width`` points) -> bars coloured by risk category."""
    full = pd.DataFrame({"bin_index": range(100 // bin_width)})
    frame = full.merge(bins, on="bin_index", how="left").fillna({"members": 0})
    starts = frame["bin_index"] * bin_width
    frame = frame.assign(start=starts, end=starts + bin_width, category=[_category_of(s) for s in starts],
                         score=[f"{s}-{s + bin_width}" for s in starts])
    bars = alt.Chart(frame).mark_bar(stroke="white", strokeWidth=0.5).encode(
        x=alt.X("start:Q", bin="binned", title="risk score", scale=alt.Scale(domain=[0, 100])), x2="end:Q",
        y=alt.Y("members:Q", title="members"),
        color=alt.Color("category:N", scale=CATEGORY_SCALE, title="category"),
        tooltip=[alt.Tooltip("score:N", title="risk score"), alt.Tooltip("members:Q", format=","),
                 alt.Tooltip("category:N")])
    boundaries = _threshold_rules([(lower, name) for lower, name in RISK_CATEGORIES[1:]], "risk score", axis="x")
    return _finish(alt.layer(bars, boundaries), "Risk-score distribution")


def category_mix(mix: pd.DataFrame, dimension: str) -> alt.Chart:
    """``dimension, dimension_value, risk_category, members`` -> 100 % stacked bars for one dimension."""
    frame = mix[mix["dimension"] == dimension]
    totals = frame.groupby("dimension_value")["members"].transform("sum")
    frame = frame.assign(share=frame["members"] / totals, dimension_value=frame["dimension_value"].astype(str),
                         stack_order=frame["risk_category"].map(CATEGORY_ORDER.index))
    words = dimension.replace("_", " ")
    chart = alt.Chart(frame).mark_bar().encode(
        x=alt.X("dimension_value:N", sort="ascending", title=words, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("share:Q", stack="zero", title="share of members", axis=alt.Axis(format=".0%")),
        color=alt.Color("risk_category:N", scale=CATEGORY_SCALE, title="category"),
        order=alt.Order("stack_order:Q"),
        tooltip=[alt.Tooltip("dimension_value:N", title=words), alt.Tooltip("risk_category:N", title="category"),
                 alt.Tooltip("share:Q", format=".1%", title="share"), alt.Tooltip("members:Q", format=",")])
    return _finish(chart, f"Risk categories by {words}")


def group_metric_bars(groups: pd.DataFrame, metric: str, title: str, low: float | None = None,
                      high: float | None = None) -> alt.LayerChart:
    """``group_value, <metric>`` for one group column -> bars with the threshold band, if any, as lines."""
    words = metric.replace("_", " ")
    frame = groups[["group_value", metric]].assign(group_value=groups["group_value"].astype(str))
    bars = alt.Chart(frame).mark_bar(color=LINE_COLOR).encode(
        x=alt.X("group_value:N", title="group", axis=alt.Axis(labelAngle=0)), y=alt.Y(f"{metric}:Q", title=words),
        tooltip=[alt.Tooltip("group_value:N", title="group"), alt.Tooltip(f"{metric}:Q", format=".4~g", title=words)])
    return _finish(alt.layer(bars, *_bound_rules(low, high, words)), title)


def calibration_bars(groups: pd.DataFrame, column: str, low: float, high: float) -> alt.LayerChart:
    """One group column's ``relative_calibration`` (the number monitoring's calibration check judges) with
    the band that check uses: a bar is inside the band exactly when its group passes."""
    return group_metric_bars(groups, "relative_calibration", f"Calibration relative to everyone else by {column}",
                             low=low, high=high)


def date_axis(dates: pd.Series, field: str = "window_end", title: str = "window end") -> alt.X:
    """An x axis of whole days: with one or few dates Vega-Lite would otherwise zoom to milliseconds.

    The scale is UTC, as the dates are (a date is midnight UTC once serialised), so no browser's
    time zone moves a point to the day before.
    """
    days = pd.to_datetime(pd.Series(dates)).dt.normalize().dropna()
    axis = {"format": "%Y-%m-%d", "labelAngle": 0}
    scale = {"type": "utc"}
    if len(days):
        low, high = days.min() - pd.Timedelta(days=1), days.max() + pd.Timedelta(days=1)
        scale["domain"] = [alt.DateTime(year=d.year, month=d.month, date=d.day, utc=True) for d in (low, high)]
        if (high - low).days <= 14:
            axis["tickCount"] = {"interval": "day", "step": 1}
    return alt.X(f"{field}:T", title=title, scale=alt.Scale(**scale), axis=alt.Axis(**axis))


def metric_over_time(history: pd.DataFrame, metric: str, title: str, low: float | None = None,
                     high: float | None = None) -> alt.LayerChart:
    """``window_end, group_value, <metric>`` -> one line per group, a point per run."""
    words = metric.replace("_", " ")
    frame = history[["window_end", "group_value", metric]].sort_values("window_end")
    frame = frame.assign(window_end=pd.to_datetime(frame["window_end"]), group_value=frame["group_value"].astype(str))
    lines = alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(size=80)).encode(   # one run reads as a point
        x=date_axis(frame["window_end"]), y=alt.Y(f"{metric}:Q", title=words),
        color=alt.Color("group_value:N", title="group"),
        tooltip=[alt.Tooltip("window_end:T", format="%Y-%m-%d", title="window end"),
                 alt.Tooltip("group_value:N", title="group"), alt.Tooltip(f"{metric}:Q", format=".4~g", title=words)])
    return _finish(alt.layer(lines, *_bound_rules(low, high, words)), title)


def composite_drift(history: pd.DataFrame, threshold: float) -> alt.LayerChart:
    """``window_end, value`` per monitoring run -> a line with the alert threshold."""
    frame = history.sort_values(["window_end", "computed_at"]) if "computed_at" in history else history
    frame = frame[["window_end", "value"]].assign(window_end=pd.to_datetime(frame["window_end"]))
    top = max(1.0, float(frame["value"].max()) if len(frame) else 1.0)
    line = alt.Chart(frame).mark_line(color=LINE_COLOR, point=alt.OverlayMarkDef(color=LINE_COLOR, size=60)).encode(
        x=date_axis(frame["window_end"]), y=alt.Y("value:Q", title="score", scale=alt.Scale(domain=[0, top])),
        tooltip=[alt.Tooltip("window_end:T", format="%Y-%m-%d", title="window end"),
                 alt.Tooltip("value:Q", format=".3f", title="composite drift")])
    rule = _threshold_rules([(threshold, f"alert > {threshold:g}")], "score")
    return _finish(alt.layer(line, rule), "Composite drift score (share of feature importance drifting)")


def psi_heatmap(psi: pd.DataFrame, moderate: float = 0.1, significant: float = 0.25) -> alt.LayerChart:
    """``run_label, column_name, value`` -> features x runs, coloured by the PSI bands, the value in each cell."""
    frame = psi.drop_duplicates(["column_name", "run_label"], keep="last")[["run_label", "column_name", "value"]]
    frame = frame.assign(run_label=frame["run_label"].astype(str),
                         band=pd.cut(frame["value"], [float("-inf"), moderate, significant, float("inf")],
                                     right=False, labels=PSI_BANDS).astype(str))
    crowded = frame["run_label"].nunique() > 12       # narrow cells: shorter values in smaller type
    base = alt.Chart(frame).encode(
        x=alt.X("run_label:O", sort=list(dict.fromkeys(frame["run_label"])), title="monitoring run (window end)",
                axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("column_name:N", sort=list(dict.fromkeys(frame["column_name"])), title="feature"))
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color("band:N", title="PSI band", scale=alt.Scale(domain=PSI_BANDS, range=list(PSI_COLORS))),
        tooltip=[alt.Tooltip("column_name:N", title="feature"), alt.Tooltip("run_label:N", title="run"),
                 alt.Tooltip("value:Q", format=".3f", title="PSI"), alt.Tooltip("band:N", title="band")])
    values = base.mark_text(fontSize=8 if crowded else 11, color="#212121").encode(
        text=alt.Text("value:Q", format=".2f" if crowded else ".3f"))
    chart = _finish(alt.layer(cells, values), f"PSI per feature and run (stable < {moderate:g} <= moderate < "
                                              f"{significant:g} <= significant)")
    return chart.properties(height=max(HEIGHT, 40 * frame["column_name"].nunique() + 140))


def _padded_utc(times: pd.Series) -> alt.Scale:
    """A UTC time scale with room on both sides, so the first and last points are drawn whole."""
    times = pd.to_datetime(times, utc=True).dropna()
    if times.empty:
        return alt.Scale(type="utc")
    pad = max((times.max() - times.min()) * 0.05, pd.Timedelta(minutes=2))
    ends = (times.min() - pad, times.max() + pad)
    return alt.Scale(type="utc", domain=[alt.DateTime(year=t.year, month=t.month, date=t.day, hours=t.hour,
                                                      minutes=t.minute, seconds=t.second, utc=True) for t in ends])


def job_durations(runs: pd.DataFrame) -> alt.LayerChart:
    """``job_key, start_time, duration_seconds, status`` -> duration of each run over time."""
    frame = runs[["job_key", "start_time", "duration_seconds", "status"]].sort_values("start_time")
    start = pd.to_datetime(frame["start_time"], utc=True)
    frame = frame.assign(start_time=start, job_key=frame["job_key"].astype(str), status=frame["status"].astype(str),
                         started=start.dt.strftime("%Y-%m-%d %H:%M:%S UTC"))
    statuses = sorted(set(frame["status"]))
    base = alt.Chart(frame).encode(
        x=alt.X("start_time:T", title="started (UTC)", scale=_padded_utc(frame["start_time"]),
                axis=alt.Axis(format="%m-%d %H:%M", labelAngle=0, labelOverlap=True)),
        y=alt.Y("duration_seconds:Q", title="seconds",    # headroom: the highest point is drawn whole
                scale=alt.Scale(domain=[0, max(1.0, float(frame["duration_seconds"].max()) * 1.1)])))
    lines = base.mark_line(color="#90a4ae").encode(detail="job_key:N")
    points = base.mark_point(filled=True, size=90, stroke="#333", strokeWidth=1).encode(
        color=alt.Color("status:N", title="status",
                        scale=alt.Scale(domain=statuses, range=[STATUS_COLORS.get(s, LINE_COLOR) for s in statuses])),
        shape=alt.Shape("job_key:N", title="job"),
        tooltip=[alt.Tooltip("job_key:N", title="job"), alt.Tooltip("started:N", title="started"),
                 alt.Tooltip("duration_seconds:Q", format=".1f", title="seconds"), alt.Tooltip("status:N")])
    return _finish(alt.layer(lines, points), "Job run durations (marker colour: status)")


def waterfall_bars(steps: pd.DataFrame) -> pd.DataFrame:
    """``label, usd, kind`` (absolute, relative, total) -> each bar's ``start``, ``end``, ``direction``, ``text``.

    A relative step starts where the previous bar ended; the base and the prediction start at 0
    (the prediction's bar ends at the reported prediction).
    """
    rows, running = [], 0.0
    for label, usd, kind in steps[["label", "usd", "kind"]].itertuples(index=False):
        start, end = (running, running + usd) if kind == "relative" else (0.0, usd)
        direction = ("increase" if usd >= 0 else "decrease") if kind == "relative" else "total"
        text = f"{usd:+,.0f}" if kind == "relative" else f"{usd:,.0f}"
        rows.append({"step": len(rows), "label": label, "usd": usd, "start": start, "end": end,
                     "top": max(start, end), "direction": direction, "text": text})
        running = end
    return pd.DataFrame(rows)


def member_waterfall(member: dict) -> alt.LayerChart:
    """One member's explanation: base -> each input -> (minimum charge floor) -> predicted charges.

    ``member`` holds the five inputs and the explanation columns (a predictions row, or a
    real-time answer with reasons); the steps come from ``explanations.reasons.waterfall_steps``.
    Increases are red, decreases green, the base and the prediction blue.
    """
    from healthcare_mlops.explanations.reasons import waterfall_steps
    from healthcare_mlops.features.definitions import MODEL_INPUT_COLUMNS

    frame = waterfall_bars(waterfall_steps(member, MODEL_INPUT_COLUMNS))
    base = alt.Chart(frame).encode(x=alt.X("label:N", sort=list(frame["label"]), title=None,
                                           axis=alt.Axis(labelAngle=-20, labelLimit=180)))
    bars = base.mark_bar().encode(
        y=alt.Y("start:Q", title="USD"), y2="end:Q",
        color=alt.Color("direction:N", legend=None, scale=alt.Scale(
            domain=["increase", "decrease", "total"],
            range=[CATEGORY_COLORS[RiskBand.CRITICAL.value], CATEGORY_COLORS[RiskBand.LOW.value], LINE_COLOR])),
        tooltip=[alt.Tooltip("label:N", title="step"), alt.Tooltip("usd:Q", format=",.0f", title="USD")])
    text = base.mark_text(baseline="bottom", dy=-3).encode(y="top:Q", text="text:N")
    return _finish(alt.layer(bars, text), "Why this prediction: base, each input, prediction (USD)")


def importance_bars(importance: pd.DataFrame) -> alt.Chart:
    """``input, version, usd`` -> grouped bars: each version's mean |contribution| per input."""
    frame = importance[["input", "version", "usd"]].assign(version=importance["version"].astype(str))
    versions = list(dict.fromkeys(frame["version"]))
    chart = alt.Chart(frame).mark_bar().encode(
        x=alt.X("input:N", sort=list(dict.fromkeys(frame["input"])), title="input", axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("version:N", sort=versions),
        y=alt.Y("usd:Q", title="USD"), color=alt.Color("version:N", sort=versions, title="version"),
        tooltip=[alt.Tooltip("input:N"), alt.Tooltip("version:N"),
                 alt.Tooltip("usd:Q", format=",.0f", title="mean |contribution| (USD)")])
    return _finish(chart, "Global importance: mean |contribution| per input (USD)")


ESTIMATE_SERIES = {"": "estimated, this window", "prediction": "estimated, labelled batch"}


def estimated_mae(history: pd.DataFrame) -> alt.LayerChart:
    """``window_end, column_name, metric, value`` (the ``estimated_mae_history`` query) -> the
    window's estimated MAE with its interval band, and the labelled batch's estimate next to its
    realised MAE, per monitoring run."""
    frame = history.dropna(subset=["value"]).drop_duplicates(["window_end", "column_name", "metric"], keep="last")
    wide = frame.pivot_table(index=["window_end", "column_name"], columns="metric", values="value").reset_index()
    wide = wide.assign(window_end=pd.to_datetime(wide["window_end"]))
    for name in ("mae", "estimated_mae", "estimated_mae_lower", "estimated_mae_upper"):
        if name not in wide:
            wide[name] = float("nan")
    estimates = wide[wide["estimated_mae"].notna()].assign(series=lambda f: f["column_name"].map(ESTIMATE_SERIES))
    realised = wide[wide["mae"].notna()].assign(series="realised, labelled batch")
    x = date_axis(wide["window_end"])
    colors = alt.Scale(domain=[*ESTIMATE_SERIES.values(), "realised, labelled batch"],
                       range=[LINE_COLOR, "#90caf9", THRESHOLD_COLOR])
    band = alt.Chart(estimates[estimates["column_name"] == ""]).mark_area(opacity=0.2, color=LINE_COLOR).encode(
        x=x, y=alt.Y("estimated_mae_lower:Q", title="MAE (USD)"), y2="estimated_mae_upper:Q")
    lines = alt.Chart(estimates).mark_line(point=True).encode(
        x=x, y="estimated_mae:Q", color=alt.Color("series:N", scale=colors, title=None),
        tooltip=[alt.Tooltip("window_end:T", format="%Y-%m-%d", title="window end"), "series:N",
                 alt.Tooltip("estimated_mae:Q", format=",.0f", title="estimate"),
                 alt.Tooltip("estimated_mae_lower:Q", format=",.0f", title="lower"),
                 alt.Tooltip("estimated_mae_upper:Q", format=",.0f", title="upper")])
    points = alt.Chart(realised).mark_point(filled=True, size=70).encode(
        x=x, y="mae:Q", color=alt.Color("series:N", scale=colors, title=None),
        tooltip=[alt.Tooltip("window_end:T", format="%Y-%m-%d", title="window end"),
                 alt.Tooltip("mae:Q", format=",.0f", title="realised MAE")])
    return _finish(alt.layer(band, lines, points), "Estimated MAE (no labels needed) and realised MAE")
