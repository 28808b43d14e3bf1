"""Real-time traffic is watched like the batch: same drift metrics on the same reference, plus errors and latency."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from healthcare_mlops.monitoring import evaluation as ev
from healthcare_mlops.monitoring.drift import reference_counts, value_counts
from healthcare_mlops.monitoring.serving_traffic import (ERROR_RATE, REALTIME_DRIFT, REALTIME_PREFIX, TrafficThresholds,
                                                          realtime_drift, scored_records, traffic_rows)
from healthcare_mlops.tables import MODEL_INPUT_COLUMNS, SERVING_PAYLOAD_SPEC

REGIONS = ("northeast", "northwest", "southeast", "southwest")
THRESHOLDS = ev.MonitoringThresholds(psi_moderate=0.1, psi_significant=0.25, composite_drift_alert=0.3,
                                     prediction_psi_alert=0.25, group_share_shift_alert=0.1,
                                     low_volume_min_predictions=50, performance_risk_score_mae_alert=15.0,
                                     fairness_mae_ratio_max=1.25, calibration_ratio_min=0.9,
                                     calibration_ratio_max=1.1, fairness_min_group_size=30, four_fifths_min=0.8)


def members(n: int, seed: int, smoker_share: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"age": rng.integers(18, 65, n), "bmi": np.round(rng.normal(30, 6, n), 1),
                          "children": rng.integers(0, 5, n), "smoker": rng.random(n) < smoker_share,
                          "region": rng.choice(REGIONS, n)})
    frame["predicted_annual_charges"] = (250.0 * frame["age"] + 20000.0 * frame["smoker"]).astype(float)
    return frame


def training_reference(sample: pd.DataFrame) -> dict:
    deciles = lambda c: list(np.quantile(sample[c].astype(float), np.linspace(0, 1, 11)))  # noqa: E731
    return {"numeric": {c: {"deciles": deciles(c), "std": float(sample[c].std())} for c in ("age", "bmi", "children")},
            "categorical": {"smoker": ["false", "true"], "region": list(REGIONS)},
            "prediction": {"deciles": deciles("predicted_annual_charges"),
                           "std": float(sample["predicted_annual_charges"].std())},
            "feature_importances": {"age": 0.3, "smoker": 0.6, "bmi": 0.1}}


def payload(frame: pd.DataFrame, statuses=None, per_request: int = 1) -> pd.DataFrame:
    """``serving_payload`` rows as the scoring server writes them, ``per_request`` records each."""
    rows, now = [], dt.datetime(2026, 1, 2, 9, tzinfo=dt.timezone.utc)
    for i, start in enumerate(range(0, len(frame), per_request)):
        chunk = frame.iloc[start:start + per_request]
        records = chunk[list(MODEL_INPUT_COLUMNS)].to_dict("records")
        answer = {"predictions": [{"predicted_annual_charges": v} for v in chunk["predicted_annual_charges"]]}
        status = 200 if statuses is None else statuses[i]
        rows.append({"request_date": now.date(), "databricks_request_id": str(i), "request_time": now,
                     "status_code": status, "execution_duration_ms": 10 + i % 7,
                     "request": json.dumps({"dataframe_records": records}, default=bool) if status == 200 else None,
                     "response": json.dumps(answer) if status == 200 else '{"error_code": "BAD_REQUEST"}',
                     "served_entity_id": "m", "model_version": "1"})
    return pd.DataFrame(rows, columns=list(SERVING_PAYLOAD_SPEC.names))


def test_volume_error_rate_and_latency_and_the_error_alert():
    traffic = payload(members(10, 1), statuses=[200] * 8 + [400, 500])
    rows, verdicts = traffic_rows(traffic, TrafficThresholds(0.05))
    values = {r["metric"]: r["value"] for r in rows}
    assert values[f"{REALTIME_PREFIX}request_volume"] == 10 and values[f"{REALTIME_PREFIX}error_rate"] == 0.2
    p95 = np.percentile(traffic["execution_duration_ms"], 95)
    assert values[f"{REALTIME_PREFIX}latency_p95_ms"] == pytest.approx(p95)
    assert [(v.type, v.severity, v.value) for v in verdicts] == [(ERROR_RATE, ev.CRITICAL, 0.2)]
    assert traffic_rows(traffic, TrafficThresholds(0.25))[1] == []
    assert traffic_rows(traffic.iloc[0:0], TrafficThresholds(0.05)) == (
        [ev.metric_row(ev.BATCH, f"{REALTIME_PREFIX}request_volume", 0)], [])


def test_records_pair_with_their_predictions_and_refused_requests_count_nowhere():
    frame = members(9, 2)
    records = scored_records(payload(frame, statuses=[200, 400, 200], per_request=3))
    expected = pd.concat([frame.iloc[0:3], frame.iloc[6:9]], ignore_index=True)
    assert list(records["predicted_annual_charges"]) == list(expected["predicted_annual_charges"])
    assert list(records["age"]) == list(expected["age"])


def test_realtime_drift_equals_the_batch_metrics_on_the_same_records(spark):
    """The real-time path (pandas) and the batch path (Spark) count the same records into the same metrics."""
    reference_sample = members(4000, 3)
    specs = [s for s in ev.column_specs(training_reference(reference_sample))]
    reference = reference_counts(reference_sample, specs)
    current = members(600, 4, smoker_share=0.6)                    # a smoker surge
    rows, verdicts = realtime_drift(specs, reference, scored_records(payload(current)), THRESHOLDS)
    batch_rows, _, _ = ev.evaluate_drift(specs, value_counts(spark.createDataFrame(current), reference, specs),
                                         THRESHOLDS)
    realtime = {(r["column_name"], r["metric"].removeprefix(REALTIME_PREFIX)): r["value"] for r in rows}
    batch = {(r["column_name"], r["metric"]): r["value"] for r in batch_rows}
    assert realtime.keys() == batch.keys() and all(r["metric"].startswith(REALTIME_PREFIX) for r in rows)
    for key, value in batch.items():
        assert realtime[key] == pytest.approx(value, nan_ok=True, abs=1e-9), key
    assert realtime[("smoker", "psi")] > THRESHOLDS.psi_significant
    assert {v.type for v in verdicts} == {REALTIME_DRIFT}
    assert all(v.message.startswith("real-time traffic: ") for v in verdicts)

    steady, quiet = realtime_drift(specs, reference, scored_records(payload(members(600, 5))), THRESHOLDS)
    assert quiet == [] and {r["metric"] for r in steady} >= {f"{REALTIME_PREFIX}composite_drift"}
    few, none = realtime_drift(specs, reference, scored_records(payload(members(10, 6, 0.9)))[:10], THRESHOLDS)
    assert none == []                                               # too few to judge: no alert
    assert realtime_drift(specs, reference, pd.DataFrame(), THRESHOLDS)[1] == []
