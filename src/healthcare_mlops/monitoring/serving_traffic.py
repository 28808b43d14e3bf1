"""Real-time traffic, watched like the batch: drift against the same reference, volume, errors, latency.

Input: the window's ``serving_payload`` rows (AI Gateway's inference table on Databricks, the
local scoring server's log otherwise; same columns, ``tables.SERVING_PAYLOAD_SPEC``). Each
answered request's records (model inputs) are paired with the predictions of its answer,
counted per value and bin exactly as the batch is (``drift.reference_counts`` on the same
``ColumnSpec``s, minus the group columns a request never carries: sex is refused, age band
is derived in batch only) and judged by the batch's own ``evaluation.evaluate_drift``. The
rows are the batch's metrics with ``REALTIME_PREFIX`` on the metric name, so the Drift page
and the tables read both alike. Pure: frames and typed thresholds in, rows and verdicts out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from healthcare_mlops.monitoring import evaluation as ev
from healthcare_mlops.monitoring.drift import reference_counts
from healthcare_mlops.monitoring.evaluation import CURRENT_SIDE, ColumnSpec, MonitoringThresholds, Verdict

REALTIME_PREFIX = "realtime_"
REALTIME_DRIFT, ERROR_RATE = "realtime_drift", "serving_error_rate"
LATENCY_QUANTILES = (50, 95, 99)


@dataclass(frozen=True)
class TrafficThresholds:
    """Alert when more than this share of the window's requests failed (any status >= 400)."""

    serving_error_rate_alert: float


def scored_records(payload: pd.DataFrame) -> pd.DataFrame:
    """One row per record of each answered request: its model inputs and ``predicted_annual_charges``."""
    rows = []
    for request, response in payload.loc[payload["status_code"].between(200, 299), ["request", "response"]].itertuples(
            index=False):
        if not request or not response:
            continue
        records = json.loads(request).get("dataframe_records") or []
        predictions = json.loads(response).get("predictions") or []
        if isinstance(predictions, dict):                # column -> values
            predictions = [dict(zip(predictions, values)) for values in zip(*predictions.values())]
        for record, prediction in zip(records, predictions):
            rows.append({**record, ev.PREDICTION_SOURCE: (prediction or {}).get(ev.PREDICTION_SOURCE)})
    return pd.DataFrame(rows)


def traffic_rows(payload: pd.DataFrame, t: TrafficThresholds) -> tuple[list[dict], list[Verdict]]:
    """Request volume, error rate and latency percentiles of the window; an alert when errors exceed the limit."""
    volume = len(payload)
    rows = [ev.metric_row(ev.BATCH, f"{REALTIME_PREFIX}request_volume", volume)]
    if not volume:
        return rows, []
    failed = int((payload["status_code"] >= 400).sum())
    rate = failed / volume
    status = ev.ALERT if rate > t.serving_error_rate_alert else ev.OK
    rows.append(ev.metric_row(ev.BATCH, f"{REALTIME_PREFIX}error_rate", rate, t.serving_error_rate_alert, status))
    latency = payload["execution_duration_ms"].astype(float).to_numpy()
    rows += [ev.metric_row(ev.BATCH, f"{REALTIME_PREFIX}latency_p{q}_ms", float(np.percentile(latency, q)))
             for q in LATENCY_QUANTILES]
    verdicts = []
    if status == ev.ALERT:
        verdicts.append(Verdict(ERROR_RATE, ev.CRITICAL, ev.BATCH, rate, t.serving_error_rate_alert,
                                f"real-time scoring: {failed} of {volume} requests failed ({rate:.1%}; alert above "
                                f"{t.serving_error_rate_alert:.1%}): see serving_payload's status and response",
                                {"failed": failed, "requests": volume}))
    return rows, verdicts


def realtime_drift(specs: list[ColumnSpec], reference: pd.DataFrame, records: pd.DataFrame,
                   t: MonitoringThresholds) -> tuple[list[dict], list[Verdict]]:
    """The batch's drift metrics for the window's real-time records, against the same reference counts.

    Too few records to judge: the rows say ``insufficient_data`` and no alert is raised (a
    quiet endpoint is not a fault; the batch has its own low-volume alert).
    """
    specs = [s for s in specs if s.is_input or s.name == ev.PREDICTION]      # a request carries no group column
    if records.empty:
        return [ev.metric_row(ev.BATCH, f"{REALTIME_PREFIX}volume", 0, status=ev.INSUFFICIENT)], []
    missing = sorted({s.source for s in specs} - set(records.columns))
    if missing:
        raise ValueError(f"real-time records lack the monitored columns {', '.join(missing)}")
    names = {s.name for s in specs}
    current = reference_counts(records, specs).assign(side=CURRENT_SIDE)
    counts = pd.concat([current, reference[reference["column_name"].isin(names)]], ignore_index=True)
    rows, verdicts, _ = ev.evaluate_drift(specs, counts, t)
    for row in rows:
        row["metric"] = REALTIME_PREFIX + row["metric"]
    judged = [v for v in verdicts if v.type in ("composite_drift", "prediction_drift")]
    return rows, [Verdict(REALTIME_DRIFT, v.severity, v.column_name, v.value, v.threshold,
                          f"real-time traffic: {v.message}", {**v.details, "drift": v.type}) for v in judged]
