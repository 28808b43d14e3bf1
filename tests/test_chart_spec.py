"""The console sends each chart as a cached Vega-Lite spec (``charts.vega_lite_spec`` via ``ui.chart``)
instead of an Altair object converted on every run: what reaches the browser must be what
``st.altair_chart`` sends, the same spec and the same data, dates as instants included."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from app import charts

FRAMES = {
    "metric_over_time": (pd.DataFrame({"window_end": [dt.date(2026, 1, 2), dt.date(2026, 1, 3)] * 2,
                                       "group_value": ["female", "female", "male", "male"],
                                       "calibration_ratio": [0.98, 1.01, 1.02, 0.97]}),
                         "calibration_ratio", "calibration by sex", 0.9, 1.1),
    "job_durations": (pd.DataFrame({"job_key": ["a", "b"], "start_time": pd.to_datetime(
        ["2026-01-01 00:50", "2026-01-02 13:05"], utc=True), "duration_seconds": [10.0, 20.0],
        "status": ["SUCCEEDED", "FAILED"]}),),
    "composite_drift": (pd.DataFrame({"window_end": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)],
                                      "value": [0.2, 1.4]}), 0.3),
    "psi_heatmap": (pd.DataFrame({"run_label": ["d1", "d1", "d2", "d2"], "column_name": ["bmi", "age", "bmi", "age"],
                                  "value": [0.05, 0.1, 0.3, 0.249]}),),
}


def _script() -> None:
    import streamlit as st

    from app import charts, ui

    for name, arguments in st.session_state["frames"].items():
        st.altair_chart(getattr(charts, name)(*arguments), width="stretch")
        ui.chart(getattr(charts, name), *arguments, key=f"cached_{name}")


def _sent(chart) -> tuple[str, list[pd.DataFrame]]:
    """The spec with its dataset names replaced by their order, and the datasets as Streamlit sends them."""
    spec = chart.proto.spec
    for index, dataset in enumerate(chart.proto.datasets):
        spec = spec.replace(dataset.name, f"dataset-{index}")
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]
    return spec, frames


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_a_cached_chart_sends_what_altair_chart_sends(name):
    at = AppTest.from_function(_script, default_timeout=60)
    at.session_state["frames"] = {name: FRAMES[name]}
    at.run()
    assert not at.exception, at.exception
    direct, cached = at.get("vega_lite_chart")
    (direct_spec, direct_frames), (cached_spec, cached_frames) = _sent(direct), _sent(cached)
    assert json.loads(cached_spec) == json.loads(direct_spec)
    assert len(cached_frames) == len(direct_frames) > 0
    for mine, theirs in zip(cached_frames, direct_frames):
        pd.testing.assert_frame_equal(mine, theirs)


def test_a_spec_names_its_data_by_content():
    first = charts.vega_lite_spec(charts.composite_drift(*FRAMES["composite_drift"]))
    again = charts.vega_lite_spec(charts.composite_drift(*FRAMES["composite_drift"]))
    other = charts.vega_lite_spec(charts.composite_drift(FRAMES["composite_drift"][0].assign(value=[0.2, 1.5]), 0.3))
    assert set(first["datasets"]) == set(again["datasets"])
    assert set(first["datasets"]) != set(other["datasets"])
