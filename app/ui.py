"""Small helpers every page uses: the identity of the session, empty states, errors, formatting."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

import pandas as pd
import streamlit as st

from app import auth, data
from healthcare_mlops.errors import UserError
from healthcare_mlops.identity import Identity

# app/vocabulary.COLUMNS' formats as Streamlit number formats
_NUMBER_FORMATS = {"usd": "dollar", "percent": "percent", "count": "localized", "score": "%.1f",
                   "seconds": "%.1f", "ratio": "%.3f"}
_LINE_PIXELS, _ROW_PADDING = 21, 14
_HEADER_PIXELS, _ROW_PIXELS = 35, 35            # the grid's header and its default row


def identity() -> Identity:
    """The session's user and role, resolved on every run (the headers are the session's)."""
    return auth.current_identity()


def empty_state(what: str, job_key: str, params: dict | None = None, extra: str = "") -> None:
    """A page without data: say what is missing and what to run to produce it."""
    hint = data.run_hint(job_key, params)
    text = f"**No {what} yet.** Run {hint} to produce it."
    demo = data.facts().demo_command
    if demo:
        text += f" Or {demo} builds the whole local loop (data, pipeline, scoring, monitoring)."
    if extra:
        text += f" {extra}"
    st.info(text)


def command(arguments: str, job_key: str) -> str:
    """What to run for ``arguments``: locally the exact CLI command for this home, on a workspace the job."""
    from healthcare_mlops import composition

    return composition.command_hint(data.console_settings(), arguments, job_key)


@contextmanager
def guard():
    """Show a problem the user can act on as a message, not a traceback."""
    try:
        yield
    except UserError as exc:
        st.error(str(exc))


def count(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{int(value):,}"


def usd(value) -> str:
    return "—" if value is None or pd.isna(value) else f"${float(value):,.0f}"


def number(value, digits: int = 3) -> str:
    return "—" if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


def interval(bounds, digits: int = 3) -> str:
    """An interval as "0.993–1.005": fixed decimals, so no bound is cut to "1" and both read alike."""
    if not bounds or any(b is None or pd.isna(b) for b in bounds):
        return ""
    low, high = (float(b) for b in bounds)
    digits = 0 if max(abs(low), abs(high)) >= 1000 else digits
    return f"{low:,.{digits}f}–{high:,.{digits}f}"


TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M"       # every page's one format; tables say "(UTC)" in the header
_GRID_TIMESTAMP_FORMAT = "YYYY-MM-DD HH:mm"  # the same, in the table grid's (moment.js) words


def timestamp(moment, zone: bool = True) -> str:
    """One timestamp format on every page: "2026-12-07 05:40 UTC" (naive means UTC); ``zone=False`` for a
    table cell, whose header names the zone."""
    if moment is None or pd.isna(moment):
        return ""
    moment = pd.Timestamp(moment)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return f"{moment:{TIMESTAMP_FORMAT}}" + (" UTC" if zone else "")


def ago(moment) -> str:
    """'3 days ago' for a timestamp (naive means UTC)."""
    if moment is None or pd.isna(moment):
        return "never"
    moment = pd.Timestamp(moment)
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    seconds = (pd.Timestamp(dt.datetime.now(dt.timezone.utc)) - moment).total_seconds()
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def reasons(text) -> str:
    """Review reason codes as a person reads them."""
    from healthcare_mlops.scoring.contract import REASON_SEPARATOR

    if not isinstance(text, str) or not text:
        return ""
    return ", ".join(part.strip().replace("_", " ") for part in text.split(REASON_SEPARATOR) if part.strip())


def column_config(frame: pd.DataFrame, wide: tuple[str, ...] = ()) -> dict:
    """Headers in words with units for every column of ``frame`` (app/vocabulary.py), numbers formatted."""
    from app.vocabulary import column_words

    config = {}
    for name in frame.columns:
        header, kind = column_words(str(name))
        width = "large" if name in wide else None
        if kind in _NUMBER_FORMATS and pd.api.types.is_numeric_dtype(frame[name]):
            config[name] = st.column_config.NumberColumn(header, format=_NUMBER_FORMATS[kind], width=width)
        elif pd.api.types.is_datetime64_any_dtype(frame[name]):
            config[name] = st.column_config.DatetimeColumn(header, format=_GRID_TIMESTAMP_FORMAT, width=width)
        else:
            config[name] = st.column_config.Column(header, width=width)
    return config


def table(frame: pd.DataFrame, key: str, wide: tuple[str, ...] = (), lines: int = 1, height=None,
          selectable: bool = False):
    """A table with headers in words; the ``wide`` columns are wide and every row shows ``lines`` lines
    of text (long values wrap instead of being cut). In a container keyed ``key`` (the browser tests
    find it by its class ``st-key-<key>``). ``selectable``: one row can be picked; the return value's
    ``selection.rows`` says which."""
    options = {"row_height": _ROW_PADDING + _LINE_PIXELS * lines} if lines > 1 else {}
    if height is not None:
        options["height"] = height
    if selectable:
        options.update(on_select="rerun", selection_mode="single-row", key=f"{key}_rows")
    with st.container(key=key):
        return st.dataframe(_without_missing_text(frame), hide_index=True, column_config=column_config(frame, wide),
                            **options)


def _without_missing_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing text reads as an empty cell, never "None" (the grid writes None for a missing value)."""
    text = [c for c in frame.columns if frame[c].dtype == object and frame[c].isna().any()]
    return frame.assign(**{c: frame[c].where(frame[c].notna(), "") for c in text}) if text else frame


def every_row(frame: pd.DataFrame, lines: int = 1) -> int:
    """The height (px) at which a table shows every row of ``frame`` without its own scroll bar."""
    return _HEADER_PIXELS + len(frame) * (_ROW_PADDING + _LINE_PIXELS * lines if lines > 1 else _ROW_PIXELS) + 3


def views(label: str, options: list[str], key: str):
    """A page's views, one drawn at a time: the first on arrival, another when the user picks it. A view not
    picked is not sent to the browser at all (``st.tabs`` and ``st.expander`` send and draw their content on
    arrival), so a new tab draws what a user comes for and pays for the rest only when asked
    (benchmarks/README.md, issue 29). A horizontal radio: the cheapest of Streamlit's choosers to draw.
    Returns the picked view and the container to draw it in, keyed ``<key>_shown`` (the element the browser
    tests and benchmark wait for: the page's last)."""
    picked = st.radio(label, options, horizontal=True, key=key)
    return picked, st.container(key=f"{key}_shown")


def chart(builder, *arguments, key: str, where=st) -> None:
    """The chart ``builder(*arguments)`` (app/charts.py) as wide as its column ``where``, in a container keyed
    ``key``: Streamlit gives a chart without selections no ``st-key-<key>`` class of its own, and the browser
    tests and benchmark find elements by that class. Its Vega-Lite spec is built once per process for the
    same arguments (``_chart_spec``), not on every session's run."""
    with where.container(key=key):
        st.vega_lite_chart(_chart_spec(builder.__name__, *arguments), width="stretch")


# Building an Altair chart and converting it to Vega-Lite was most of a page run's server time on a warm
# server (benchmarks/README.md, issue 29); the arguments are the already aggregated frames the page shows,
# so a spec is valid for as long as they are the same, whoever asks.
@st.cache_data(show_spinner=False, max_entries=512)
def _chart_spec(builder: str, *arguments) -> dict:
    from app import charts

    return charts.vega_lite_spec(getattr(charts, builder)(*arguments))


def thresholds_in_words(names: pd.Series, values: pd.Series, missing: str = "none (information only)") -> list[str]:
    """Monitoring thresholds as a person reads them: a number, the calibration band (monitoring records
    no single number for it), or ``missing`` where no threshold applies; never 'None'."""
    from app.vocabulary import monitoring_thresholds

    t = monitoring_thresholds(data.console_settings().variables)
    band = f"{t.calibration_ratio_min:g}-{t.calibration_ratio_max:g} (band)"
    return [band if str(name).startswith("calibration") else missing if value is None or pd.isna(value)
            else f"{float(value):g}" for name, value in zip(names, values)]
