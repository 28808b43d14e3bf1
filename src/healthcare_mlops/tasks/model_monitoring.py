"""The ``model_monitoring`` job: a scored window against the champion's training reference.

``--mode monitor`` (daily, 06:00): the window is ``--window_start`` .. ``--window_end``
(scoring dates, inclusive); empty means the latest scoring date in
``ml_patient_predictions``. Before the first champion exists it ends successfully, saying it
waits (a champion that disappeared is a failure: governance/first_champion.py). It computes,
for the window's predictions against the champion's reference counts, every drift metric of
docs/definitions.md (Spark reduces the batch to counts, monitoring/drift.py; the verdicts are
monitoring/evaluation.py and, for labelled batches, monitoring/performance.py), then
performance and fairness of the latest *labelled* batch, the label-free estimate of the
window's MAE and risk-score MAE (tasks/performance_estimation.py), and writes three tables:
``ml_drift_metrics``, ``ml_fairness_metrics`` and ``ml_model_alerts``, each replacing the
window's rows in one atomic write (a rerun of a window replaces it; other windows stay).
A critical alert then triggers the retrain job once per window, through the job launcher
(monitoring/retrain.py; locally the runner, on Databricks ``jobs.run_now``).

Performance needs actual charges, which arrive with a later load: the labels are the
features of the latest as-of date L <= window end (``annual_charges`` of each member),
and the evaluated batch is the latest scoring date S < L. So on day 2 the monitoring run
judges the drift of day 2's predictions and the performance of day 1's predictions
against the charges the day-2 load delivered (for day-1 members, and for members who
had no charges yet on day 1). Each fairness row says which S and L it compares; the
risk score of the actual charges uses the reference quantiles of the model version that
scored batch S.

``--mode setup`` (the training pipeline's last task): checks that the champion and the
challenger (those that exist) have their monitoring reference, creates the three
monitoring tables when missing, and does not need any predictions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from functools import partial

import pandas as pd

from healthcare_mlops.composition import Runtime

from healthcare_mlops.dates import parse_optional_date
from healthcare_mlops.errors import UserError
from healthcare_mlops.failpoints import failpoint
from healthcare_mlops.governance.first_champion import waiting_for_first_champion
from healthcare_mlops.modeling.artifacts import CHALLENGER, CHAMPION
from healthcare_mlops.monitoring import evaluation as ev
from healthcare_mlops.monitoring import performance
from healthcare_mlops.monitoring.contract import ALERT_COLUMNS
from healthcare_mlops.parameters import monitoring_thresholds
from healthcare_mlops.tasks.performance_estimation import estimated_performance
from healthcare_mlops.tasks.serving_monitoring import realtime_monitoring
from healthcare_mlops.tables import (ML_DRIFT_METRICS, ML_FAIRNESS_METRICS, ML_INSURANCE_FEATURES, ML_MODEL_ALERTS,
                                     ML_PATIENT_PREDICTIONS, SILVER_PATIENTS, TABLE_SPECS)

MONITOR, SETUP = "monitor", "setup"
MODES = (MONITOR, SETUP)
MONITORING_TABLES = {name: TABLE_SPECS[name] for name in (ML_DRIFT_METRICS, ML_FAIRNESS_METRICS, ML_MODEL_ALERTS)}
NO_PREDICTIONS = "run batch_inference first"


def resolve_window(scoring_dates: list[dt.date], window_start=None, window_end=None) -> tuple[dt.date, dt.date]:
    """The window to monitor: both given, one given (a one-day window), or the latest scoring date."""
    start, end = parse_optional_date(window_start, "--window_start"), parse_optional_date(window_end, "--window_end")
    if not scoring_dates:
        raise UserError(f"ml_patient_predictions holds no predictions yet: {NO_PREDICTIONS}")
    if start is None and end is None:
        start = end = max(scoring_dates)
    start, end = start or end, end or start
    if start > end:
        raise UserError(f"--window_start {start} is after --window_end {end}")
    if not any(start <= day <= end for day in scoring_dates):
        shown = ", ".join(d.isoformat() for d in sorted(scoring_dates)[-5:])
        raise UserError(f"no predictions scored between {start} and {end} (latest scoring dates: {shown}); "
                        f"{NO_PREDICTIONS} for that date")
    return start, end


# -- the tables ---------------------------------------------------------------------------------
def _write_window(catalog, spark, name: str, rows: list[dict], window: tuple[dt.date, dt.date]) -> int:
    spec = MONITORING_TABLES[name]
    frame = spark.createDataFrame([tuple(row.get(c) for c in spec.names) for row in rows], schema=spec.ddl)
    return catalog.write(frame, name, mode="replace_partition", partition=dict(zip(spec.partition_by, window)),
                         partition_by=list(spec.partition_by))


def ensure_tables(catalog, spark) -> list[str]:
    """Create the monitoring tables that do not exist yet (empty, partitioned by window); their names."""
    created = []
    for name, spec in MONITORING_TABLES.items():
        if not catalog.exists(name):
            catalog.write(spark.createDataFrame([], schema=spec.ddl), name, mode="append",
                          partition_by=list(spec.partition_by))
            created.append(name)
    return created


def _previous_alerts(catalog, window: tuple[dt.date, dt.date]) -> pd.DataFrame:
    if not catalog.exists(ML_MODEL_ALERTS):
        return pd.DataFrame(columns=list(ALERT_COLUMNS))
    return catalog.read_pandas(ML_MODEL_ALERTS, [("window_start", "=", window[0]), ("window_end", "=", window[1])])


# -- the run ----------------------------------------------------------------------------------
def _scoring_version(frame) -> str | None:
    from pyspark.sql import functions as F

    row = (frame.where(F.col("model_version").isNotNull()).groupBy("model_version").count()
           .orderBy(F.desc("count")).first())
    return None if row is None else str(row["model_version"])


def labelled_batch(scoring_dates: list[dt.date], label_dates: list[dt.date]) -> tuple[dt.date, dt.date] | None:
    """(S, L): the latest label date L and the latest scoring date S before it; None when none pairs."""
    pairs = [(max(d for d in scoring_dates if d < label), label) for label in sorted(label_dates, reverse=True)
             if any(d < label for d in scoring_dates)]
    return pairs[0] if pairs else None


def _performance(catalog, registry, window_end: dt.date, champion_version: str,
                 t: ev.MonitoringThresholds):
    """Metric rows, fairness rows, verdicts and the batch description of the latest labelled batch."""
    from healthcare_mlops.monitoring.drift import performance_sums
    from healthcare_mlops.runtime.monitoring_reference import risk_references

    pending = [ev.metric_row(ev.BATCH, "labelled_predictions", 0, None, ev.PENDING)], [], [], {}
    if not catalog.exists(ML_INSURANCE_FEATURES):
        return pending
    label_dates = catalog.distinct_values(ML_INSURANCE_FEATURES, "as_of_date", [("as_of_date", "<=", window_end)],
                                          not_null="annual_charges")
    scored = catalog.distinct_values(ML_PATIENT_PREDICTIONS, "scoring_date", [("scoring_date", "<=", window_end)])
    batch = labelled_batch(scored, label_dates)
    if batch is None:
        return pending
    scoring_date, label_date = batch
    predictions = catalog.read(ML_PATIENT_PREDICTIONS, [("scoring_date", "=", scoring_date)])
    labels = catalog.read(ML_INSURANCE_FEATURES, [("as_of_date", "=", label_date)],
                          columns=["patient_natural_key", "annual_charges"])
    version = _scoring_version(predictions) or champion_version
    try:
        prediction_reference, actual_reference = risk_references(registry, version)
    except UserError:
        version = champion_version
        prediction_reference, actual_reference = risk_references(registry, version)
    sums = performance_sums(predictions, labels, prediction_reference, actual_reference)
    described = {"scoring_date": scoring_date, "label_date": label_date, "model_version": version}
    rows, fairness, verdicts = performance.evaluate_performance(sums, t, described)
    for row in fairness:
        row.update(scoring_date=scoring_date, label_date=label_date)
    return rows, fairness, verdicts, described


def latest_load(catalog) -> dt.date | None:
    """The date of silver's latest load (what a retrain trains on), None without a silver table."""
    return max(catalog.distinct_values(SILVER_PATIENTS, "as_of_date"), default=None) \
        if catalog.exists(SILVER_PATIENTS) else None


def _drift(catalog, window: tuple[dt.date, dt.date], champion, t) -> tuple[list[dict], list, int]:
    """The window's drift rows (with the reference's model version), verdicts and volume.

    The predictions must carry every column the champion's reference monitors.
    """
    from healthcare_mlops.monitoring.drift import value_counts

    specs = ev.column_specs(champion.reference)
    current = catalog.read(ML_PATIENT_PREDICTIONS, [("scoring_date", ">=", window[0]),
                                                    ("scoring_date", "<=", window[1])])
    missing = sorted({s.source for s in specs} - set(current.columns))
    if missing:
        raise UserError(f"ml_patient_predictions lacks the monitored columns {', '.join(missing)}")
    counts = value_counts(current, champion.counts, specs)
    drift_rows, verdicts, volume = ev.evaluate_drift(specs, counts, t)
    drift_rows.append(ev.metric_row(ev.BATCH, "reference_model_version", float(champion.version)
                                    if champion.version.isdigit() else None))
    return drift_rows, verdicts, volume


def _write_tables(catalog, spark, window: tuple[dt.date, dt.date], drift_table: list[dict],
                  fairness_table: list[dict], alert_table: list[dict]) -> None:
    """Replace the window's rows of the metrics, fairness and alerts tables, in that order."""
    _write_window(catalog, spark, ML_DRIFT_METRICS, drift_table, window)
    failpoint("monitoring:after_drift")
    _write_window(catalog, spark, ML_FAIRNESS_METRICS, fairness_table, window)
    failpoint("monitoring:after_fairness")
    _write_window(catalog, spark, ML_MODEL_ALERTS, alert_table, window)
    failpoint("monitoring:after_alerts")


def monitor(runtime: Runtime, window_start=None, window_end=None, retrain_job_id: str | None = None,
            run_id: str | None = None, launcher=None) -> dict:
    """Judge the window's drift and the latest labelled batch, write the three tables, retrain once if critical."""
    from healthcare_mlops.monitoring import alerts as al
    from healthcare_mlops.monitoring.report import summary_lines
    from healthcare_mlops.monitoring.retrain import retrain_once

    settings = runtime.settings
    waiting = waiting_for_first_champion(runtime.audit_log, runtime.registry, "model_monitoring")
    if waiting:               # a new workspace: the schedule runs before the first champion exists
        print(waiting)
        return {"waiting": waiting}
    t = monitoring_thresholds(settings.variables)
    spark, catalog = runtime.spark, runtime.spark_catalog
    if not catalog.exists(ML_PATIENT_PREDICTIONS):
        raise UserError(f"{catalog.fqn(ML_PATIENT_PREDICTIONS)} does not exist yet: {NO_PREDICTIONS}")
    window = resolve_window(catalog.distinct_values(ML_PATIENT_PREDICTIONS, "scoring_date"), window_start, window_end)
    run_id = str(run_id or uuid.uuid4().hex)
    now = runtime.clock()
    champion = version_reference(runtime, CHAMPION, required=True)
    drift_rows, verdicts, volume = _drift(catalog, window, champion, t)
    realtime_rows, realtime_verdicts = realtime_monitoring(catalog, window, champion, t, settings.variables)
    drift_rows, verdicts = drift_rows + realtime_rows, verdicts + realtime_verdicts
    perf_rows, fairness_rows, perf_verdicts, batch = _performance(catalog, runtime.registry, window[1],
                                                                  champion.version, t)
    estimate_rows, estimate_verdicts = estimated_performance(catalog, runtime.registry, window, champion.version,
                                                             t, batch)
    perf_rows += estimate_rows
    verdicts += perf_verdicts + estimate_verdicts
    for verdict in verdicts:
        verdict.details.setdefault("reference_model_version", champion.version)

    base = {"run_id": run_id, "window_start": window[0], "window_end": window[1], "computed_at": now}
    drift_table = [{**base, **row} for row in drift_rows + perf_rows]
    fairness_table = [{**base, **row} for row in fairness_rows]
    previous = _previous_alerts(catalog, window)
    alert_table = al.alert_rows(settings.tables, verdicts, run_id, window[0], window[1], now, previous)
    _write_tables(catalog, spark, window, drift_table, fairness_table, alert_table)

    critical = [a for a in alert_table if a["severity"] == ev.CRITICAL and a["run_id"] == run_id]
    retrain_run_id, note = retrain_once(settings.tables, launcher or runtime.launcher, retrain_job_id, window,
                                        critical, previous, partial(al.record_retrain, catalog),
                                        latest_load(catalog) if critical else None)
    summary = {"run_id": run_id, "window_start": window[0].isoformat(), "window_end": window[1].isoformat(),
               "volume": volume, "reference_version": champion.version,
               "performance_batch": {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in batch.items()},
               "drift_metrics": len(drift_table), "fairness_rows": len(fairness_table),
               "alerts": [{k: a[k] for k in ("alert_id", "type", "severity", "column_name", "message",
                                             "retrain_run_id")} for a in alert_table],
               "retrain_run_id": retrain_run_id}
    for line in [*([note] if note else []), *summary_lines(summary, drift_rows)]:
        print(line)
    return summary


def version_reference(runtime: Runtime, alias: str, required: bool = False):
    """The monitoring reference (``monitoring.reference.ModelReference``) of the version behind
    ``alias`` (the champion: the audited one); None when no version has it, unless ``required``."""
    from healthcare_mlops.governance.champion import audited_champion
    from healthcare_mlops.runtime.monitoring_reference import load_reference, resolve_version

    settings = runtime.settings
    resolved = resolve_version(runtime.registry, alias, partial(audited_champion, runtime.audit_log))
    if resolved is None:
        if required:
            raise UserError(f"{settings.model_name} has no {alias}: run the ml_training_pipeline job first")
        return None
    return load_reference(runtime.registry, *resolved)


def setup(runtime: Runtime) -> dict:
    """Check the monitoring references of the champion and challenger; create the monitoring tables."""
    settings = runtime.settings
    checked = {}
    for alias in (CHAMPION, CHALLENGER):
        reference = version_reference(runtime, alias)
        if reference is None:
            continue
        version = reference.version
        ev.column_specs(reference.reference)      # the reference must describe every monitored column
        checked[alias] = version
        print(f"{alias}: version {version} has its monitoring reference "
              f"({reference.reference.get('rows')} training rows, counted per value and bin)")
    if not checked:
        raise UserError(f"{settings.model_name} has neither a champion nor a challenger: run model_training first")
    spark, catalog = runtime.spark, runtime.spark_catalog
    created = ensure_tables(catalog, spark)
    for name in MONITORING_TABLES:
        print(f"{catalog.fqn(name)}: {'created' if name in created else 'exists'}")
    predictions = None
    if catalog.exists(ML_PATIENT_PREDICTIONS):
        predictions = len(catalog.distinct_values(ML_PATIENT_PREDICTIONS, "scoring_date"))
    print(f"{catalog.fqn(ML_PATIENT_PREDICTIONS)}: "
          + (f"{predictions} scoring dates" if predictions else "no predictions yet (monitoring starts after "
                                                                  "the first batch_inference run)"))
    return {"references": checked, "created": created, "scoring_dates": predictions or 0}


def run(runtime: Runtime, mode: str = MONITOR, window_start=None, window_end=None,
        retrain_job_id: str | None = None, run_id: str | None = None, launcher=None) -> dict:
    mode = (mode or MONITOR).strip()
    if mode not in MODES:
        raise UserError(f"--mode must be one of {', '.join(MODES)}, not '{mode}'")
    if mode == SETUP:
        return setup(runtime)
    return monitor(runtime, window_start, window_end, retrain_job_id, run_id, launcher)
