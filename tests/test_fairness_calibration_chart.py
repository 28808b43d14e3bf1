"""The Fairness page's calibration chart draws the number monitoring's calibration check judges, against
the band that check uses: a bar is inside the band exactly when its group passes (issue 29: bars drawn as
each group's own ratio sat under the band while the check, relative to everyone else, said ok)."""

from __future__ import annotations

import pandas as pd

from app import charts
from healthcare_mlops.monitoring import evaluation as ev
from healthcare_mlops.monitoring import performance as perf

from test_monitoring_statistics import THRESHOLDS, labelled, sums_of


def drawn(chart) -> tuple[dict[str, float], list[float]]:
    """The bars (group -> height) and the band's bounds as Vega-Lite receives them."""
    spec = chart.to_dict()
    data = spec.get("datasets", {})
    bars, rules = spec["layer"][0], spec["layer"][1]          # the band: a layer of rule and label
    heights = {row["group_value"]: row["relative_calibration"] for row in data[bars["data"]["name"]]}
    return heights, sorted(row["bound"] for row in data[rules["data"]["name"]])


def judged(shift: float = 1.3, southwest_high: float = 1.2):
    """An overall cost shift (every group's own ratio ~0.77, far under the band) and one region over-predicted."""
    frame = labelled(inflation=shift)
    southwest = frame["region"] == "southwest"
    frame.loc[southwest, "predicted"] = frame.loc[southwest, "predicted"] * southwest_high
    rows, fairness, verdicts = perf.evaluate_performance(sums_of(frame), THRESHOLDS, {})
    return pd.DataFrame(rows), pd.DataFrame(fairness), verdicts


def check_row(rows: pd.DataFrame, column: str) -> pd.Series:
    return rows[(rows["column_name"] == column) & (rows["metric"] == "calibration_ratio_worst")].iloc[0]


def test_the_bars_are_the_checked_quantity_inside_the_band_exactly_when_the_check_passes():
    rows, fairness, verdicts = judged()
    low, high = THRESHOLDS.calibration_ratio_min, THRESHOLDS.calibration_ratio_max
    for column, expected_status, outside in (("sex", ev.OK, set()), ("region", ev.FLAG, {"southwest"})):
        groups = fairness[fairness["group_column"] == column]
        heights, band = drawn(charts.calibration_bars(groups, column, low, high))
        assert band == [low, high]
        check = check_row(rows, column)
        assert check["status"] == expected_status
        # the check's worst group is the bar farthest from 1, at the very height the check recorded
        worst = max(heights, key=lambda g: abs(heights[g] - 1.0))
        assert worst == check["group_value"] and heights[worst] == check["value"]
        assert {g for g, h in heights.items() if not low <= h <= high} == outside
    # the case: every sex's own ratio is far under the band, yet the check (and now the bars) say ok
    sexes = fairness[fairness["group_column"] == "sex"]
    assert (sexes["calibration_ratio"] < low).all()
    assert not [v for v in verdicts if v.type == "fairness"]


def test_a_protected_group_outside_the_band_is_a_bar_outside_it_and_the_alert_names_the_heights():
    frame = labelled()
    female = frame["sex"] == "female"
    frame.loc[female, "predicted"] = frame.loc[female, "predicted"] * 1.3
    rows, fairness, verdicts = perf.evaluate_performance(sums_of(frame), THRESHOLDS, {})
    groups = pd.DataFrame(fairness).query("group_column == 'sex'")
    heights, (low, high) = drawn(charts.calibration_bars(groups, "sex", THRESHOLDS.calibration_ratio_min,
                                                         THRESHOLDS.calibration_ratio_max))
    assert heights["female"] > high and heights["male"] < low
    (alert,) = [v for v in verdicts if v.type == "fairness"]
    assert alert.column_name == "sex" and check_row(pd.DataFrame(rows), "sex")["status"] == ev.ALERT
    worst = max(heights.values(), key=lambda h: abs(h - 1.0))
    assert check_row(pd.DataFrame(rows), "sex")["value"] == worst
    assert f"female ({heights['female']:.2f})" in alert.message and f"male ({heights['male']:.2f})" in alert.message


def test_the_whole_batch_row_has_no_relative_calibration():
    _, fairness, _ = judged()
    whole = fairness[fairness["group_column"] == ev.ALL_GROUP]
    assert len(whole) == 1 and whole["relative_calibration"].isna().all()
