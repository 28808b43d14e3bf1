"""Monitoring's arithmetic against scipy, property tests, and the pure verdicts (no Spark)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as s
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, ks_2samp, wasserstein_distance

from healthcare_mlops.monitoring import evaluation as ev
from healthcare_mlops.monitoring import performance as perf
from healthcare_mlops.monitoring import statistics as st

RNG = np.random.default_rng(7)


def union_counts(reference, current):
    """Distinct values of both samples and each sample's count per value (what Spark returns)."""
    values = np.unique(np.concatenate([reference, current]))
    ref = np.array([np.sum(reference == v) for v in values], float) if len(values) < 200 else \
        np.bincount(np.searchsorted(values, reference), minlength=len(values)).astype(float)
    cur = np.array([np.sum(current == v) for v in values], float) if len(values) < 200 else \
        np.bincount(np.searchsorted(values, current), minlength=len(values)).astype(float)
    return values, ref, cur


SAMPLES = {
    "continuous": (RNG.normal(30, 6, 3000), RNG.normal(31, 6.5, 2500)),
    "ties (ages)": (RNG.integers(18, 65, 4000).astype(float), RNG.integers(25, 65, 1500).astype(float)),
    "children": (RNG.choice(6, 5000, p=[.43, .24, .18, .12, .02, .01]).astype(float),
                 RNG.choice(6, 800, p=[.33, .24, .18, .2, .03, .02]).astype(float)),
    "same": (np.arange(100.0), np.arange(100.0)),
    "disjoint": (np.arange(10.0), np.arange(10.0) + 100),
    "tiny": (np.array([1.0]), np.array([2.0, 3.0])),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_ks_matches_scipy_asymp(name):
    reference, current = SAMPLES[name]
    values, ref, cur = union_counts(reference, current)
    ours = st.ks_from_counts(values, ref, cur)
    theirs = ks_2samp(reference, current, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.pvalue == pytest.approx(theirs.pvalue, abs=1e-9)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_wasserstein_matches_scipy(name):
    reference, current = SAMPLES[name]
    values, ref, cur = union_counts(reference, current)
    assert st.wasserstein_from_counts(values, ref, cur) == pytest.approx(
        wasserstein_distance(reference, current), rel=1e-9, abs=1e-12)


def test_ks_and_wasserstein_ignore_the_order_of_the_distinct_values():
    reference, current = SAMPLES["ties (ages)"]
    values, ref, cur = union_counts(reference, current)
    order = RNG.permutation(len(values))
    assert st.ks_from_counts(values[order], ref[order], cur[order]) == st.ks_from_counts(values, ref, cur)
    assert st.wasserstein_from_counts(values[order], ref[order], cur[order]) == pytest.approx(
        st.wasserstein_from_counts(values, ref, cur), rel=1e-12)


@pytest.mark.parametrize("p, q", [([0.2, 0.3, 0.5], [0.1, 0.1, 0.8]), ([10, 0, 5, 1], [0, 7, 5, 1]),
                                  ([1, 1], [1, 1]), ([1, 0], [0, 1]), ([0.43, 0.24, 0.18, 0.12, 0.02, 0.01, 0],
                                                                       [0.33, 0.24, 0.18, 0.2, 0.03, 0.02, 0])])
def test_js_distance_matches_scipy_base_2(p, q):
    assert st.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-9)


@pytest.mark.parametrize("observed, reference", [([120, 80, 30, 0, 0], [0.5, 0.3, 0.2, 0.0, 0.0]),
                                                 ([300, 310, 290, 320], [0.25, 0.25, 0.25, 0.25]),
                                                 ([5, 60, 35], [0.2, 0.5, 0.3])])
def test_chi_square_matches_scipy(observed, reference):
    floored = np.maximum(np.asarray(reference, float), st.SHARE_FLOOR)
    expected = np.sum(observed) * floored / floored.sum()
    theirs = chisquare(observed, expected)
    ours = st.chi_square(observed, reference)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-9)
    assert ours.pvalue == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


def test_psi_by_hand_and_the_floor():
    expected, actual = np.array([0.5, 0.5, 0.0]), np.array([0.4, 0.5, 0.1])
    by_hand = (0.4 - 0.5) * np.log(0.4 / 0.5) + (0.1 - 1e-4) * np.log(0.1 / 1e-4)
    assert st.psi(expected, actual) == pytest.approx(by_hand, rel=1e-12)
    assert st.psi_band(0.05, 0.1, 0.25) == "stable"
    assert st.psi_band(0.1, 0.1, 0.25) == "moderate"
    assert st.psi_band(0.25, 0.1, 0.25) == "moderate"
    assert st.psi_band(0.26, 0.1, 0.25) == "significant"


share_vectors = s.lists(s.floats(0, 1000, allow_nan=False), min_size=2, max_size=12).filter(lambda v: sum(v) > 0)


@given(share_vectors)
def test_psi_of_a_distribution_with_itself_is_zero(counts):
    shares = st.shares(counts)
    assert st.psi(shares, shares) == 0.0


@given(s.data())
def test_psi_is_not_negative(data):
    n = data.draw(s.integers(2, 12))
    p = st.shares(data.draw(s.lists(s.floats(0.001, 1000), min_size=n, max_size=n)))
    q = st.shares(data.draw(s.lists(s.floats(0.001, 1000), min_size=n, max_size=n)))
    assert st.psi(p, q) >= -1e-12


@given(s.data())
def test_js_distance_is_in_0_1_and_symmetric(data):
    n = data.draw(s.integers(2, 12))
    p = data.draw(s.lists(s.floats(0, 1000, allow_nan=False), min_size=n, max_size=n).filter(lambda v: sum(v) > 0))
    q = data.draw(s.lists(s.floats(0, 1000, allow_nan=False), min_size=n, max_size=n).filter(lambda v: sum(v) > 0))
    distance = st.js_distance(p, q)
    assert 0.0 <= distance <= 1.0 + 1e-12
    assert distance == pytest.approx(st.js_distance(q, p), abs=1e-12)
    assert st.js_distance(p, p) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")   # scipy's p-value at n1 = n2 = 1
@settings(max_examples=50)
@given(s.lists(s.integers(0, 30), min_size=1, max_size=200), s.lists(s.integers(0, 30), min_size=1, max_size=200),
       s.randoms())
def test_ks_and_wasserstein_do_not_depend_on_row_order(reference, current, rnd):
    reference, current = np.array(reference, float), np.array(current, float)
    shuffled = np.array(rnd.sample(list(current), len(current)), float)
    first = st.ks_from_counts(*union_counts(reference, current))
    second = st.ks_from_counts(*union_counts(reference, shuffled))
    assert first == second
    assert first.statistic == pytest.approx(ks_2samp(reference, current, method="asymp").statistic, abs=1e-12)
    assert st.wasserstein_from_counts(*union_counts(reference, current)) == pytest.approx(
        wasserstein_distance(reference, current), rel=1e-9, abs=1e-12)


def test_tied_deciles_collapse_into_one_edge_per_value():
    deciles = [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 5.0]      # children
    edges = st.numeric_edges(deciles)
    assert edges == (0.0, 1.0, 2.0, 3.0)
    bins = st.assign_numeric_bins([0, 1, 2, 3, 4, 5, np.nan], edges)
    assert bins.tolist() == [0, 1, 2, 3, 4, 4, st.MISSING_BIN]
    assert st.numeric_bin_labels(edges) == ["(-inf, 0]", "(0, 1]", "(1, 2]", "(2, 3]", "(3, inf)"]


def test_decile_bins_hold_a_tenth_of_continuous_reference_data():
    values = RNG.normal(30, 6, 100_000)
    edges = st.numeric_edges(np.percentile(values, np.linspace(0, 100, 11)))
    counts = st.bin_counts(st.assign_numeric_bins(values, edges), np.ones(len(values)), len(edges) + 1)
    assert len(edges) == 9 and counts[-1] == 0                         # no missing
    assert np.allclose(st.shares(counts[:-1]), 0.1, atol=1e-4)


def test_bin_counts_put_missing_last():
    assert st.bin_counts([0, 2, -1, 2], [5, 1, 3, 1], 3).tolist() == [5.0, 0.0, 2.0, 3.0]
    assert st.categorical_bins(("female", "male")) == ["female", "male", "unseen", "missing"]


# -- the pure verdicts --------------------------------------------------------------------------
THRESHOLDS = ev.MonitoringThresholds(
    psi_moderate=0.1, psi_significant=0.25, composite_drift_alert=0.3, prediction_psi_alert=0.25,
    group_share_shift_alert=0.10, low_volume_min_predictions=50, performance_risk_score_mae_alert=15.0,
    fairness_mae_ratio_max=1.25, calibration_ratio_min=0.9, calibration_ratio_max=1.1, fairness_min_group_size=30,
    four_fifths_min=0.8)

REFERENCE = {
    "numeric": {"age": {"deciles": [18, 19, 24, 29, 34, 39, 44, 49, 54, 60, 64], "std": 14.0},
                "bmi": {"deciles": [16, 22.9, 25.6, 27.5, 29.2, 30.8, 32.3, 34.0, 35.8, 38.5, 53], "std": 6.0},
                "children": {"deciles": [0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 5], "std": 1.2}},
    "categorical": {"smoker": {"false": 0.8, "true": 0.2},
                    "region": {"northeast": 0.25, "northwest": 0.25, "southeast": 0.25, "southwest": 0.25},
                    "sex": {"male": 0.5, "female": 0.5},
                    "age_band": {"18-29": 0.3, "30-39": 0.2, "40-49": 0.2, "50-59": 0.2, "60+": 0.1}},
    "feature_importances": {"age": 0.25, "bmi": 0.13, "children": 0.01, "smoker": 0.61, "region": 0.0},
    "prediction": {"deciles": [2000, 3900, 5000, 6600, 8500, 10000, 11800, 13300, 17200, 36300, 46900],
                   "std": 11000.0},
}


def counts_of(frame: pd.DataFrame, specs, side: str) -> pd.DataFrame:
    """The value counts Spark would return, computed with numpy (for the pure verdict tests)."""
    rows = []
    for spec in specs:
        column = frame[spec.source]
        if spec.kind == ev.NUMERIC:
            values = column.astype(float).to_numpy()
            bins = st.assign_numeric_bins(values, spec.edges)
            scale = 10.0 ** (spec.decimals or 0)
            nums = values if spec.decimals is None else np.floor(values * scale + 0.5) / scale
            keys = pd.DataFrame({"num": nums, "cat": None, "bin": bins})
        else:
            text = column.astype(str).str.lower()
            index = {c: i for i, c in enumerate(spec.categories)}
            keys = pd.DataFrame({"num": np.nan, "cat": text,
                                 "bin": [index.get(v, len(spec.categories)) for v in text]})
        grouped = keys.groupby(["num", "cat", "bin"], dropna=False).size().reset_index(name="count")
        rows.append(grouped.assign(side=side, column_name=spec.name))
    return pd.concat(rows, ignore_index=True)[list(ev.COUNT_COLUMNS)]


def population(n: int, seed: int, smoker=0.2, min_age=18) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(min_age, 65, n)
    smokes = rng.random(n) < smoker
    return pd.DataFrame({
        "age": age, "bmi": np.round(rng.normal(30.7, 6.1, n).clip(16, 53), 2),
        "children": rng.choice(6, n, p=[.43, .24, .18, .12, .02, .01]), "smoker": smokes,
        "region": rng.choice(["northeast", "northwest", "southeast", "southwest"], n),
        "sex": rng.choice(["male", "female"], n),
        "age_band": pd.cut(age, [0, 29, 39, 49, 59, 200],
                           labels=["18-29", "30-39", "40-49", "50-59", "60+"]).astype(str),
        "predicted_annual_charges": 265 * age + np.where(smokes, 30000, 0) + rng.gamma(2, 1500, n),
    })


def verdicts_for(current: pd.DataFrame, reference: pd.DataFrame):
    specs = ev.column_specs(REFERENCE)
    counts = pd.concat([counts_of(reference, specs, ev.REFERENCE_SIDE), counts_of(current, specs, ev.CURRENT_SIDE)])
    return ev.evaluate_drift(specs, counts, THRESHOLDS)


def test_same_population_raises_nothing():
    rows, verdicts, volume = verdicts_for(population(5000, 1), population(20000, 2))
    assert verdicts == [] and volume == 5000
    assert {r["metric"] for r in rows} >= {"psi", "js_distance", "ks_statistic", "ks_pvalue", "wasserstein_norm",
                                           "chi2_statistic", "chi2_pvalue", "composite_drift", "group_share_delta",
                                           "volume", "importance"}


def test_smokers_carry_the_importance_into_a_critical_composite_alert():
    rows, verdicts, _ = verdicts_for(population(5000, 1, smoker=0.5), population(20000, 2))
    kinds = {(v.type, v.severity, v.column_name) for v in verdicts}
    assert ("composite_drift", "critical", "") in kinds
    assert ("demographic_shift", "warning", "smoker") in kinds
    composite = next(v for v in verdicts if v.type == "composite_drift")
    assert composite.value == pytest.approx(0.61)
    assert composite.details["drifted_inputs"] == ["smoker"]


def test_an_input_with_little_importance_is_a_warning():
    current = population(5000, 1)
    current["bmi"] = (current["bmi"] + 4).clip(upper=57)
    _, verdicts, _ = verdicts_for(current, population(20000, 2))
    assert [(v.type, v.severity) for v in verdicts] == [("composite_drift", "warning")]


def test_aging_moves_age_bands_and_predictions():
    _, verdicts, _ = verdicts_for(population(5000, 1, min_age=31), population(20000, 2))
    kinds = {(v.type, v.severity, v.column_name) for v in verdicts}
    assert ("demographic_shift", "warning", "age_band") in kinds
    assert ("prediction_drift", "critical", "prediction") in kinds


def test_low_volume_is_judged_and_drift_is_not():
    rows, verdicts, volume = verdicts_for(population(30, 1, smoker=0.6), population(20000, 2))
    assert volume == 30
    assert [(v.type, v.severity) for v in verdicts] == [("low_volume", "warning")]
    psi_rows = [r for r in rows if r["metric"] in ("psi", "composite_drift", "group_share_delta")]
    assert psi_rows and all(r["status"] == ev.INSUFFICIENT for r in psi_rows)


def sums_of(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-group sums (what drift.performance_sums returns) from a labelled pandas frame."""
    parts = [("all", "all", frame)] + [(g, v, part) for g in ev.FAIRNESS_GROUPS for v, part in frame.groupby(g)]
    rows = []
    for column, value, part in parts:
        error = part["predicted"] - part["actual"]
        rows.append({"group_column": column, "group_value": str(value), "n": len(part),
                     "sum_abs_error": error.abs().sum(), "sum_sq_error": (error ** 2).sum(),
                     "sum_risk_abs_error": part["risk_error"].sum(), "sum_predicted": part["predicted"].sum(),
                     "sum_actual": part["actual"].sum(), "sum_actual_sq": (part["actual"] ** 2).sum(),
                     "n_critical": (part["risk_category"] == "critical").sum()})
    return pd.DataFrame(rows)


def labelled(n=4000, seed=3, inflation=1.0, risk_error=7.0):
    rng = np.random.default_rng(seed)
    frame = population(n, seed)
    actual = (frame["predicted_annual_charges"] + rng.normal(0.0, 2000.0, n)) * inflation
    return frame.assign(predicted=frame["predicted_annual_charges"], actual=actual,
                        risk_error=rng.exponential(risk_error, n),
                        risk_category=np.where(rng.random(n) < 0.05, "critical", "low"))


def test_performance_metrics_from_sums_match_direct_computation():
    from healthcare_mlops.modeling import metrics as m

    frame = labelled()
    rows, fairness, verdicts = perf.evaluate_performance(sums_of(frame), THRESHOLDS, {"scoring_date": "d1"})
    values = {r["metric"]: r["value"] for r in rows if r["column_name"] == ev.PREDICTION}
    assert values["mae"] == pytest.approx(m.mae(frame["actual"], frame["predicted"]), rel=1e-9)
    assert values["rmse"] == pytest.approx(m.rmse(frame["actual"], frame["predicted"]), rel=1e-9)
    assert values["r2"] == pytest.approx(m.r2(frame["actual"], frame["predicted"]), rel=1e-9)
    assert values["calibration_ratio"] == pytest.approx(frame["predicted"].mean() / frame["actual"].mean(), rel=1e-9)
    assert verdicts == []
    assert {(f["group_column"], f["group_value"]) for f in fairness} >= {("all", "all"), ("sex", "male"),
                                                                         ("age_band", "60+")}


def test_a_uniform_rise_in_costs_is_a_performance_alert():
    _, _, verdicts = perf.evaluate_performance(sums_of(labelled(inflation=1.25)), THRESHOLDS, {"scoring_date": "d1"})
    performance = [v for v in verdicts if v.type == "performance"]
    assert len(performance) == 1 and performance[0].severity == "critical"
    assert performance[0].value == pytest.approx(0.8, abs=0.02)
    assert {v.type for v in verdicts} <= {"performance", "fairness"}


def test_risk_score_mae_above_the_threshold_is_a_performance_alert():
    _, _, verdicts = perf.evaluate_performance(sums_of(labelled(risk_error=20.0)), THRESHOLDS, {})
    assert [(v.type, v.column_name) for v in verdicts] == [("performance", "prediction")]
    assert verdicts[0].threshold == 15.0


def test_fairness_alerts_on_the_protected_attribute_flags_rating_factors_and_skips_small_groups():
    frame = labelled()
    worse = frame["sex"] == "female"
    noise = np.random.default_rng(5).normal(0.0, 5000.0, int(worse.sum()))
    frame.loc[worse, "predicted"] = frame.loc[worse, "actual"] + noise     # one sex predicted much worse
    rows, _, verdicts = perf.evaluate_performance(sums_of(frame), THRESHOLDS, {})
    fairness = [v for v in verdicts if v.type == "fairness"]
    assert [v.column_name for v in fairness] == ["sex"]
    assert fairness[0].severity == "warning"
    frame = labelled()
    worse = frame["region"] == "southwest"
    frame.loc[worse, "predicted"] = frame.loc[worse, "actual"] + np.random.default_rng(5).normal(
        0.0, 5000.0, int(worse.sum()))                                    # a rating factor: flagged, no alert
    rows, _, verdicts = perf.evaluate_performance(sums_of(frame), THRESHOLDS, {})
    assert [v for v in verdicts if v.type == "fairness"] == []
    region = {r["metric"]: r["status"] for r in rows if r["column_name"] == "region"}
    assert region["fairness_mae_ratio"] == ev.FLAG
    small = sums_of(labelled(n=100))
    _, _, verdicts = perf.evaluate_performance(small, THRESHOLDS, {})
    assert verdicts == []                              # 100 labelled rows: groups under 30 are not judged


def test_an_overall_shift_is_performance_not_unfairness():
    _, _, verdicts = perf.evaluate_performance(sums_of(labelled(inflation=1.3)), THRESHOLDS, {})
    assert [v.type for v in verdicts] == ["performance"]


def test_too_few_labels_are_not_judged():
    rows, _, verdicts = perf.evaluate_performance(sums_of(labelled(n=40, risk_error=40)), THRESHOLDS, {})
    assert verdicts == []
    assert next(r for r in rows if r["metric"] == "risk_score_mae")["status"] == ev.INSUFFICIENT


def test_thresholds_come_from_the_bundle_variables():
    from healthcare_mlops.parameters import monitoring_thresholds
    from healthcare_mlops.settings import resolve_settings

    thresholds = monitoring_thresholds(resolve_settings("local").variables)
    assert thresholds == THRESHOLDS
    with pytest.raises(Exception, match="psi_moderate"):
        monitoring_thresholds({})
