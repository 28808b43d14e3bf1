"""Monitoring's label-free performance estimate: reads the scored rows and the scoring version's
performance estimator (fitted at training time), hands them to the core
(``monitoring/performance_estimate.py``).

Two estimates per run, as ``ml_drift_metrics`` rows: the window's (column ``''``; a warning
when the risk-score MAE's whole interval is above the realised one's alert threshold), and
that of the labelled batch evaluated in the same run (column ``prediction``, next to its
realised ``mae`` and ``risk_score_mae``), so estimate and realised value stay comparable.
A version without an estimator (trained before it was logged, or on too few held-out rows)
gives ``unavailable`` rows with the reason; monitoring never fails on it.
"""

from __future__ import annotations

import datetime as dt

from healthcare_mlops.features.definitions import MODEL_INPUT_COLUMNS
from healthcare_mlops.monitoring import evaluation as ev
from healthcare_mlops.monitoring import performance_estimate as pe
from healthcare_mlops.tables import ML_PATIENT_PREDICTIONS

SCORED_COLUMNS = [*MODEL_INPUT_COLUMNS, pe.PREDICTED_COLUMN, pe.RISK_COLUMN, "model_version"]


def _scored(catalog, start: dt.date, end: dt.date):
    return catalog.read_pandas(ML_PATIENT_PREDICTIONS, [("scoring_date", ">=", start), ("scoring_date", "<=", end)],
                               columns=SCORED_COLUMNS)


def _estimate(registry, scored, version: str | None, column_name: str, t: ev.MonitoringThresholds,
              described: dict, estimators: dict) -> tuple[list[dict], list]:
    """The estimate rows of ``scored`` from the estimator of the version that scored most of its rows."""
    from healthcare_mlops.runtime.monitoring_reference import performance_estimator

    versions = scored["model_version"].dropna().astype(str)
    version = versions.mode().iloc[0] if len(versions) else version
    if version is None:
        return pe.unavailable_rows(column_name, "no model version scored these rows"), []
    if version not in estimators:                   # read once per run
        estimators[version] = performance_estimator(registry, version)
    estimator, reason = estimators[version]
    if estimator is None:
        return pe.unavailable_rows(column_name, reason), []
    return pe.estimate_rows(pe.estimate_window(estimator, scored), column_name, t.performance_risk_score_mae_alert,
                            {**described, "model_version": version})


def estimated_performance(catalog, registry, window: tuple[dt.date, dt.date], champion_version: str,
                          t: ev.MonitoringThresholds, batch: dict) -> tuple[list[dict], list]:
    """Rows and verdicts of the window's estimate and, when ``batch`` (the labelled batch) is set, its estimate."""
    estimators: dict = {}
    described = {"window_start": window[0].isoformat(), "window_end": window[1].isoformat()}
    rows, verdicts = _estimate(registry, _scored(catalog, *window), champion_version, ev.BATCH, t, described,
                               estimators)
    if batch.get("scoring_date") is not None:
        day = batch["scoring_date"]
        batch_rows, _ = _estimate(registry, _scored(catalog, day, day), batch.get("model_version"), ev.PREDICTION,
                                  t, {"scoring_date": day.isoformat()}, estimators)
        rows += batch_rows
    return rows, verdicts
