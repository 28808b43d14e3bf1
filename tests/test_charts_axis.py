"""The over-time charts' x axis is whole days, even with a single monitoring window."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from app import charts


def test_one_window_spans_days_not_milliseconds():
    history = pd.DataFrame({"window_end": [dt.date(2026, 1, 2)] * 2, "group_value": ["female", "male"],
                            "calibration_ratio": [0.98, 1.01]})
    axis = charts.metric_over_time(history, "calibration_ratio", "t", 0.9, 1.1).layout.xaxis
    assert axis.type == "date" and axis.tickformat == "%Y-%m-%d"
    assert list(axis.range) == ["2026-01-01", "2026-01-03"]


def test_a_long_history_keeps_automatic_ticks():
    dates = pd.Series(pd.date_range("2026-01-01", periods=30, freq="D"))
    axis = charts.date_axis(dates)
    assert axis["range"] == ["2025-12-31", "2026-01-31"] and "dtick" not in axis
