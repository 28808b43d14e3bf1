"""The over-time charts' x axis is whole days, even with a single monitoring window; the waterfall's bars."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from app import charts


def x_encoding(chart) -> dict:
    """The x encoding of a layered chart's first layer, as Vega-Lite receives it."""
    return chart.to_dict()["layer"][0]["encoding"]["x"]


def day(text: str) -> dict:
    year, month, date = (int(p) for p in text.split("-"))
    return {"year": year, "month": month, "date": date, "utc": True}


def test_one_window_spans_days_not_milliseconds():
    history = pd.DataFrame({"window_end": [dt.date(2026, 1, 2)] * 2, "group_value": ["female", "male"],
                            "calibration_ratio": [0.98, 1.01]})
    x = x_encoding(charts.metric_over_time(history, "calibration_ratio", "t", 0.9, 1.1))
    assert x["type"] == "temporal" and x["scale"]["type"] == "utc" and x["axis"]["format"] == "%Y-%m-%d"
    assert x["scale"]["domain"] == [day("2026-01-01"), day("2026-01-03")]
    assert x["axis"]["tickCount"] == {"interval": "day", "step": 1}


def test_a_long_history_keeps_automatic_ticks():
    dates = pd.Series(pd.date_range("2026-01-01", periods=30, freq="D"))
    x = charts.date_axis(dates).to_dict()
    assert x["scale"]["domain"] == [day("2025-12-31"), day("2026-01-31")] and "tickCount" not in x["axis"]


def test_the_waterfall_runs_from_the_base_through_each_input_to_the_prediction():
    steps = pd.DataFrame({"label": ["base (average member)", "age 61", "non-smoker", "predicted charges"],
                          "usd": [13_000.0, 4_000.0, -6_000.0, 11_000.0],
                          "kind": ["absolute", "relative", "relative", "total"]})
    bars = charts.waterfall_bars(steps)
    assert list(zip(bars["start"], bars["end"])) == [(0, 13_000), (13_000, 17_000), (17_000, 11_000), (0, 11_000)]
    assert list(bars["direction"]) == ["total", "increase", "decrease", "total"]
    assert list(bars["text"]) == ["13,000", "+4,000", "-6,000", "11,000"]


def test_job_durations_read_utc_and_leave_room_for_the_first_and_last_run():
    """Issue 29 item 5: the Jobs chart read '12:50 ... 01 AM' for 00:50 UTC and clipped its last point."""
    runs = pd.DataFrame({"job_key": ["a", "a"], "status": ["SUCCEEDED", "FAILED"], "duration_seconds": [30.0, 90.0],
                         "start_time": pd.to_datetime(["2026-01-02 00:50", "2026-01-02 01:50"])})
    layer = charts.job_durations(runs).to_dict()["layer"][0]["encoding"]
    x, y = layer["x"], layer["y"]
    assert x["scale"]["type"] == "utc" and x["axis"]["format"] == "%m-%d %H:%M" and "UTC" in x["title"]
    low, high = x["scale"]["domain"]
    assert (low["hours"], low["minutes"], high["hours"], high["minutes"]) == (0, 47, 1, 53)   # 5 % of an hour
    assert y["scale"]["domain"] == [0, pytest.approx(99.0)]                                     # above the longest
