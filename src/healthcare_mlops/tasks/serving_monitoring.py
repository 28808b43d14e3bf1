"""``model_monitoring``'s real-time part: the window's ``serving_payload``, judged by monitoring/serving_traffic.py.

The table is AI Gateway's inference table on Databricks and the local scoring server's log
otherwise; no table yet (nothing served) gives a zero volume and no alert.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from healthcare_mlops.monitoring import evaluation as ev
from healthcare_mlops.monitoring.serving_traffic import realtime_drift, scored_records, traffic_rows
from healthcare_mlops.parameters import traffic_thresholds
from healthcare_mlops.tables import SERVING_PAYLOAD, SERVING_PAYLOAD_SPEC


def window_payload(catalog, window: tuple[dt.date, dt.date]) -> pd.DataFrame:
    """The window's real-time requests (empty with the table's columns when nothing was served)."""
    if not catalog.exists(SERVING_PAYLOAD):
        return pd.DataFrame(columns=list(SERVING_PAYLOAD_SPEC.names))
    return catalog.read_pandas(SERVING_PAYLOAD, [("request_date", ">=", window[0]), ("request_date", "<=", window[1])])


def realtime_monitoring(catalog, window: tuple[dt.date, dt.date], champion, t: ev.MonitoringThresholds,
                        variables: dict) -> tuple[list[dict], list[ev.Verdict]]:
    """The metric rows and verdicts of the window's real-time traffic, next to the batch's."""
    payload = window_payload(catalog, window)
    rows, verdicts = traffic_rows(payload, traffic_thresholds(variables))
    drift_rows, drift_verdicts = realtime_drift(ev.column_specs(champion.reference), champion.counts,
                                                scored_records(payload), t)
    return rows + drift_rows, verdicts + drift_verdicts
