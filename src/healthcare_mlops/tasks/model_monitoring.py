"""The ``model_monitoring`` job: a scored window against the champion's training reference.

``--mode monitor`` (daily, 06:00): the window is ``--window_start`` .. ``--window_end``
(scoring dates, inclusive); empty means the latest scoring date in
``ml_patient_predictions``. It computes, for the window's predictions against the
champion's reference sample, every drift metric of DESIGN.md section 5 (Spark reduces the
batch to counts, monitoring/drift.py; the verdicts are monitoring/evaluation.py), then
performance and fairness of the latest *labelled* batch, and writes three tables:
``ml_drift_metrics``, ``ml_fairness_metrics`` and ``ml_model_alerts``, each replacing the
window's rows in one atomic write (a rerun of a window replaces it; other windows stay).
A critical alert then triggers the retrain job (monitoring/retrain.py) once per window.

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

import pandas as pd

from healthcare_mlops.dates import parse_optional_date
from healthcare_mlops.errors import UserError
from healthcare_mlops.failpoints import failpoint
from healthcare_mlops.monitoring import evaluation as ev
from healthcare_mlops.monitoring.contract import (ALERT_COLUMNS, ALERT_SCHEMA_DDL, DRIFT_SCHEMA_DDL,
                                                  FAIRNESS_SCHEMA_DDL, WINDOW_COLUMNS)
from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import (ML_DRIFT_METRICS, ML_FAIRNESS_METRICS, ML_INSURANCE_FEATURES, ML_MODEL_ALERTS,
                                     ML_PATIENT_PREDICTIONS)

MONITOR, SETUP = "monitor", "setup"
MODES = (MONITOR, SETUP)
MONITORING_TABLES = {ML_DRIFT_METRICS: DRIFT_SCHEMA_DDL, ML_FAIRNESS_METRICS: FAIRNESS_SCHEMA_DDL,
                     ML_MODEL_ALERTS: ALERT_SCHEMA_DDL}
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


# -- reading, with the window pushed down to the storage ---------------------------------------
def _local_dataset_table(settings: Settings, name: str, where: list[tuple] | None, columns: list[str] | None):
    """Locally: the matching rows as an Arrow table, read by delta-rs with the filter pushed down."""
    import pyarrow.dataset as ds

    from healthcare_mlops.runtime.storage import LocalTableStore

    dataset = LocalTableStore(settings).delta_table(name).to_pyarrow_dataset()
    expression = None
    for column, op, value in where or []:
        field = ds.field(column)
        term = {"=": field == value, ">=": field >= value, "<=": field <= value, "<": field < value}[op]
        expression = term if expression is None else expression & term
    return dataset.to_table(columns=columns, filter=expression)


def _read(spark, settings: Settings, name: str, where: list[tuple] | None = None, columns: list[str] | None = None):
    """A table (or the rows matching ``where`` = [(column, op, value)]) as a Spark DataFrame."""
    from pyspark.sql import functions as F

    if settings.is_local:
        return spark.createDataFrame(_local_dataset_table(settings, name, where, columns))
    frame = spark.table(settings.tables.fqn(name))
    for column, op, value in where or []:
        condition = {"=": F.col(column) == F.lit(value), ">=": F.col(column) >= F.lit(value),
                     "<=": F.col(column) <= F.lit(value), "<": F.col(column) < F.lit(value)}[op]
        frame = frame.where(condition)
    return frame.select(*columns) if columns else frame


def _distinct_dates(spark, settings: Settings, name: str, column: str, where=None,
                    not_null: str | None = None) -> list[dt.date]:
    """The distinct dates of ``column`` (rows where ``not_null`` is set, when given): a small read.

    Locally straight from the Delta files (no Spark job); on Databricks a Spark aggregate
    on the partition column.
    """
    if settings.is_local:
        import pyarrow.compute as pc

        table = _local_dataset_table(settings, name, where, [column] + ([not_null] if not_null else []))
        if not_null:
            table = table.filter(pc.is_valid(table.column(not_null)))
        return sorted(d for d in pc.unique(table.column(column)).to_pylist() if d is not None)
    from pyspark.sql import functions as F

    frame = _read(spark, settings, name, where, columns=[column] + ([not_null] if not_null else []))
    if not_null:
        frame = frame.where(F.col(not_null).isNotNull())
    return sorted(row[0] for row in frame.select(column).distinct().collect() if row[0] is not None)


def _label_dates(spark, settings: Settings, window_end: dt.date) -> list[dt.date]:
    """As-of dates (<= window end) whose features carry at least one actual charge."""
    return _distinct_dates(spark, settings, ML_INSURANCE_FEATURES, "as_of_date", [("as_of_date", "<=", window_end)],
                           not_null="annual_charges")


def _frame(spark, rows: list[dict], ddl: str, columns: tuple):
    return spark.createDataFrame([tuple(row.get(c) for c in columns) for row in rows], schema=ddl)


def _write_window(spark, settings: Settings, name: str, rows: list[dict], window: tuple[dt.date, dt.date]) -> int:
    from healthcare_mlops.spark.tables_io import write_table

    ddl = MONITORING_TABLES[name]
    columns = tuple(part.split()[0] for part in ddl.split(", "))
    partition = dict(zip(WINDOW_COLUMNS, window))
    return write_table(_frame(spark, rows, ddl, columns), settings, name, mode="replace_partition",
                       partition=partition, partition_by=list(WINDOW_COLUMNS))


def ensure_tables(spark, settings: Settings) -> list[str]:
    """Create the monitoring tables that do not exist yet (empty, partitioned by window); their names."""
    from healthcare_mlops.spark.tables_io import table_exists, write_table

    created = []
    for name, ddl in MONITORING_TABLES.items():
        if not table_exists(spark, settings, name):
            write_table(spark.createDataFrame([], schema=ddl), settings, name, mode="append",
                        partition_by=list(WINDOW_COLUMNS))
            created.append(name)
    return created


def _previous_alerts(spark, settings: Settings, window: tuple[dt.date, dt.date]) -> pd.DataFrame:
    from healthcare_mlops.spark.tables_io import table_exists

    if not table_exists(spark, settings, ML_MODEL_ALERTS):
        return pd.DataFrame(columns=list(ALERT_COLUMNS))
    where = [("window_start", "=", window[0]), ("window_end", "=", window[1])]
    if settings.is_local:
        return _local_dataset_table(settings, ML_MODEL_ALERTS, where, None).to_pandas()
    return _read(spark, settings, ML_MODEL_ALERTS, where).toPandas()


# -- the run ----------------------------------------------------------------------------------
def _scoring_version(frame) -> str | None:
    from pyspark.sql import functions as F

    row = (frame.where(F.col("model_version").isNotNull()).groupBy("model_version").count()
           .orderBy(F.desc("count")).first())
    return None if row is None else str(row["model_version"])


def _performance(spark, settings: Settings, window_end: dt.date, champion_version: str,
                 t: ev.MonitoringThresholds):
    """Metric rows, fairness rows, verdicts and the batch description of the latest labelled batch."""
    from healthcare_mlops.monitoring.drift import performance_sums
    from healthcare_mlops.monitoring.reference import risk_references
    from healthcare_mlops.spark.tables_io import table_exists

    if not table_exists(spark, settings, ML_INSURANCE_FEATURES):
        return [ev._row(ev.BATCH, "labelled_predictions", 0, None, ev.PENDING)], [], [], {}
    label_dates = _label_dates(spark, settings, window_end)
    scored = _distinct_dates(spark, settings, ML_PATIENT_PREDICTIONS, "scoring_date",
                             [("scoring_date", "<=", window_end)])
    pairs = [(max(d for d in scored if d < label), label) for label in reversed(label_dates)
             if any(d < label for d in scored)]
    if not pairs:
        return [ev._row(ev.BATCH, "labelled_predictions", 0, None, ev.PENDING)], [], [], {}
    scoring_date, label_date = pairs[0]
    predictions = _read(spark, settings, ML_PATIENT_PREDICTIONS, [("scoring_date", "=", scoring_date)])
    labels = _read(spark, settings, ML_INSURANCE_FEATURES, [("as_of_date", "=", label_date)],
                   columns=["patient_natural_key", "annual_charges"])
    version = _scoring_version(predictions) or champion_version
    try:
        prediction_reference, actual_reference = risk_references(settings, version)
    except UserError:
        version = champion_version
        prediction_reference, actual_reference = risk_references(settings, version)
    sums = performance_sums(predictions, labels, prediction_reference, actual_reference)
    batch = {"scoring_date": scoring_date, "label_date": label_date, "model_version": version}
    rows, fairness, verdicts = ev.evaluate_performance(sums, t, batch)
    for row in fairness:
        row.update(scoring_date=scoring_date, label_date=label_date)
    return rows, fairness, verdicts, batch


def monitor(settings: Settings, window_start=None, window_end=None, retrain_job_id: str | None = None,
            run_id: str | None = None, bundle=None, client=None) -> dict:
    from healthcare_mlops.monitoring import alerts as al
    from healthcare_mlops.monitoring.drift import value_counts
    from healthcare_mlops.monitoring.reference import load_reference
    from healthcare_mlops.monitoring.retrain import trigger_retrain
    from healthcare_mlops.spark.session import get_spark
    from healthcare_mlops.spark.tables_io import table_exists

    t = ev.MonitoringThresholds.from_variables(settings.variables)
    spark = get_spark(settings)
    if not table_exists(spark, settings, ML_PATIENT_PREDICTIONS):
        raise UserError(f"{settings.tables.fqn(ML_PATIENT_PREDICTIONS)} does not exist yet: {NO_PREDICTIONS}")
    window = resolve_window(_distinct_dates(spark, settings, ML_PATIENT_PREDICTIONS, "scoring_date"),
                            window_start, window_end)
    run_id = str(run_id or uuid.uuid4().hex)
    now = dt.datetime.now(dt.timezone.utc)
    champion = load_reference(settings)
    specs = ev.column_specs(champion.reference)

    current = _read(spark, settings, ML_PATIENT_PREDICTIONS,
                    [("scoring_date", ">=", window[0]), ("scoring_date", "<=", window[1])])
    missing = sorted({s.source for s in specs} - set(current.columns))
    if missing:
        raise UserError(f"ml_patient_predictions lacks the monitored columns {', '.join(missing)}")
    counts = value_counts(current, champion.sample, specs)
    drift_rows, verdicts, volume = ev.evaluate_drift(specs, counts, t)
    drift_rows.append(ev._row(ev.BATCH, "reference_model_version", float(champion.version)
                              if champion.version.isdigit() else None))
    perf_rows, fairness_rows, perf_verdicts, batch = _performance(spark, settings, window[1], champion.version, t)
    verdicts += perf_verdicts
    for verdict in verdicts:
        verdict.details.setdefault("reference_model_version", champion.version)

    base = {"run_id": run_id, "window_start": window[0], "window_end": window[1], "computed_at": now}
    drift_table = [{**base, **row} for row in drift_rows + perf_rows]
    fairness_table = [{**base, **row} for row in fairness_rows]
    previous = _previous_alerts(spark, settings, window)
    alert_table = al.alert_rows(settings, verdicts, run_id, window[0], window[1], now, previous)
    _write_window(spark, settings, ML_DRIFT_METRICS, drift_table, window)
    failpoint("monitoring:after_drift")
    _write_window(spark, settings, ML_FAIRNESS_METRICS, fairness_table, window)
    failpoint("monitoring:after_fairness")
    _write_window(spark, settings, ML_MODEL_ALERTS, alert_table, window)
    failpoint("monitoring:after_alerts")

    critical = [a for a in alert_table if a["severity"] == ev.CRITICAL and a["run_id"] == run_id]
    retrain = None
    # One retrain per window, even when a rerun raises a different set of critical alerts.
    linked = [a["retrain_run_id"] for a in critical if a["retrain_run_id"]] + \
        [r for r in previous.get("retrain_run_id", pd.Series(dtype=object)).dropna() if r]
    earlier = next(iter(linked), None)
    if critical and earlier:
        missing_link = [a["alert_id"] for a in critical if not a["retrain_run_id"]]
        if missing_link:
            al.record_retrain(settings, missing_link, earlier)
        print(f"retrain for this window was already triggered: run {earlier}")
    elif critical:
        retrain = trigger_retrain(settings, retrain_job_id or "", window[0], window[1],
                                  [a["alert_id"] for a in critical], client=client, bundle=bundle)
        if retrain is not None:
            al.record_retrain(settings, [a["alert_id"] for a in critical], retrain.run_id)
            for alert in critical:
                alert["retrain_run_id"] = retrain.run_id
            print(f"critical alert -> retrain job '{retrain_job_id}' run {retrain.run_id} ({retrain.status})")
        else:
            print("critical alert, but no --retrain_job_id: no retrain triggered")

    summary = {"run_id": run_id, "window_start": window[0].isoformat(), "window_end": window[1].isoformat(),
               "volume": volume, "reference_version": champion.version,
               "performance_batch": {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in batch.items()},
               "drift_metrics": len(drift_table), "fairness_rows": len(fairness_table),
               "alerts": [{k: a[k] for k in ("alert_id", "type", "severity", "column_name", "message",
                                             "retrain_run_id")} for a in alert_table],
               "retrain_run_id": retrain.run_id if retrain else earlier}
    _print_summary(summary, drift_rows)
    return summary


def _print_summary(summary: dict, drift_rows: list[dict]) -> None:
    print(f"model_monitoring window {summary['window_start']}..{summary['window_end']} (run {summary['run_id']}): "
          f"{summary['volume']} predictions vs the training reference of version {summary['reference_version']}")
    for row in drift_rows:
        if row["metric"] in ("psi", "composite_drift"):
            name = row["column_name"] or "(batch)"
            print(f"  {name:12} {row['metric']:16} {row['value'] if row['value'] is not None else float('nan'):8.4f}"
                  f"  {row['status']}")
    batch = summary["performance_batch"]
    if batch:
        print(f"  performance: predictions of {batch['scoring_date']} against charges of {batch['label_date']}")
    else:
        print("  performance: pending (no scored batch has later charges yet)")
    if not summary["alerts"]:
        print("no alerts")
    for alert in summary["alerts"]:
        print(f"ALERT {alert['severity']:8} {alert['type']:18} {alert['alert_id']}  {alert['message']}")


def setup(settings: Settings) -> dict:
    """Check the monitoring references of the champion and challenger; create the monitoring tables."""
    from healthcare_mlops.monitoring.reference import CHALLENGER, CHAMPION, load_reference, resolve_version
    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
    from healthcare_mlops.spark.session import get_spark
    from healthcare_mlops.spark.tables_io import table_exists

    client = configure_mlflow(settings)
    checked = {}
    for alias in (CHAMPION, CHALLENGER):
        resolved = resolve_version(client, settings.model_name, alias)
        if resolved is None:
            continue
        version = resolved[0]
        reference = load_reference(settings, version=version)
        ev.column_specs(reference.reference)      # the reference must describe every monitored column
        checked[alias] = version
        print(f"{alias}: version {version} has its monitoring reference "
              f"({reference.reference.get('rows')} training rows, sample of {len(reference.sample)})")
    if not checked:
        raise UserError(f"{settings.model_name} has neither a champion nor a challenger: run model_training first")
    spark = get_spark(settings)
    created = ensure_tables(spark, settings)
    for name in MONITORING_TABLES:
        print(f"{settings.tables.fqn(name)}: {'created' if name in created else 'exists'}")
    predictions = None
    if table_exists(spark, settings, ML_PATIENT_PREDICTIONS):
        predictions = len(_distinct_dates(spark, settings, ML_PATIENT_PREDICTIONS, "scoring_date"))
    print(f"{settings.tables.fqn(ML_PATIENT_PREDICTIONS)}: "
          + (f"{predictions} scoring dates" if predictions else "no predictions yet (monitoring starts after "
                                                                  "the first batch_inference run)"))
    return {"references": checked, "created": created, "scoring_dates": predictions or 0}


def run(settings: Settings, mode: str = MONITOR, window_start=None, window_end=None,
        retrain_job_id: str | None = None, run_id: str | None = None, bundle=None, client=None) -> dict:
    mode = (mode or MONITOR).strip()
    if mode not in MODES:
        raise UserError(f"--mode must be one of {', '.join(MODES)}, not '{mode}'")
    if mode == SETUP:
        return setup(settings)
    return monitor(settings, window_start, window_end, retrain_job_id, run_id, bundle, client)
