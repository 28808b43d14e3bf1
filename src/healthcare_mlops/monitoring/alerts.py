"""Alerts: their stable ids, listing, acknowledgement (the audit record) and the retrain link.

An alert's id is a UUID derived from (catalog.schema, window, type, column): a rerun of a
window raises the same alert under the same id, and the run carries the earlier row's
``created_at``, acknowledgement and ``retrain_run_id`` over, so acknowledging survives a
rerun and a rerun does not trigger a second retrain.

Acknowledging is an atomic conditional update of one row (``... WHERE alert_id = X AND
acknowledged_at IS NULL``). On Databricks it is an ``UPDATE`` through the SQL warehouse
with named parameters. Locally it is one delta-rs commit that replaces the alert's window
partition with the same rows, the one alert acknowledged (``_update_local``): not
``DeltaTable.update``, because delta-rs 1.x rewrites the file it updates with Arrow
``string_view`` columns, and a filter on a string column then fails in every reader of the
table's pyarrow dataset (DuckDB, the console: "Function 'equal' has no kernel matching
input types (string, string_view)"). The rewrite checks the table version it read and
retries when another writer committed in between; whoever comes second is told who
acknowledged first. ``acknowledged_by`` / ``acknowledged_at`` (and the
optional comment) are the audit record; the table's Delta history keeps every change.
Callers: the CLI (``healthcare-mlops alerts``) and the console, each with its identity.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.identity import Identity
from healthcare_mlops.monitoring.contract import ALERT_COLUMNS, ALERT_SCHEMA_DDL
from healthcare_mlops.monitoring.evaluation import Verdict, details_json
from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import ML_MODEL_ALERTS

ALERT_NAMESPACE = uuid.UUID("6f0c1a52-8f4e-4a8e-9a55-2b1f6d0e7c31")
CARRIED_OVER = ("created_at", "acknowledged_by", "acknowledged_at", "acknowledged_comment", "retrain_run_id")
LIST_COLUMNS = ("alert_id", "created_at", "window_start", "window_end", "type", "severity", "column_name",
                "value", "threshold", "message", "acknowledged_by", "acknowledged_at", "retrain_run_id")


def alert_arrow_schema():
    """``ml_model_alerts`` as an Arrow schema (for writers without Spark)."""
    import pyarrow as pa

    types = {"STRING": pa.string(), "DOUBLE": pa.float64(), "DATE": pa.date32(),
             "TIMESTAMP": pa.timestamp("us", tz="UTC"), "BIGINT": pa.int64()}
    return pa.schema([pa.field(name, types[kind]) for name, kind in
                      (part.split() for part in ALERT_SCHEMA_DDL.split(", "))])


def alert_id(settings: Settings, window_start: dt.date, window_end: dt.date, alert_type: str,
             column_name: str) -> str:
    """The stable id of an alert: the same window, type and column give the same id."""
    key = "|".join([settings.catalog, settings.schema, window_start.isoformat(), window_end.isoformat(),
                    alert_type, column_name or ""])
    return str(uuid.uuid5(ALERT_NAMESPACE, key))


def normalise_alert_id(value: str) -> str:
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise UserError(f"'{value}' is not an alert id (a UUID, as `healthcare-mlops alerts list` shows)") from None


def alert_rows(settings: Settings, verdicts: list[Verdict], run_id: str, window_start: dt.date,
               window_end: dt.date, created_at: dt.datetime, previous: pd.DataFrame | None = None) -> list[dict]:
    """The window's alert rows; an alert the window raised before keeps its history (CARRIED_OVER).

    An alert of an earlier run of the window that someone acknowledged stays, as it was,
    even when this run no longer raises it: the acknowledgement is the audit record."""
    earlier = {}
    if previous is not None and len(previous):
        earlier = {row["alert_id"]: row for row in previous.to_dict(orient="records")}
    rows = []
    for verdict in verdicts:
        identifier = alert_id(settings, window_start, window_end, verdict.type, verdict.column_name)
        row = {"alert_id": identifier, "run_id": run_id, "window_start": window_start, "window_end": window_end,
               "type": verdict.type, "severity": verdict.severity, "message": verdict.message,
               "column_name": verdict.column_name, "value": _number(verdict.value),
               "threshold": _number(verdict.threshold),
               "details": details_json(verdict.details), "created_at": created_at, "acknowledged_by": None,
               "acknowledged_at": None, "retrain_run_id": None, "acknowledged_comment": None}
        before = earlier.get(identifier)
        if before is not None:
            for column in CARRIED_OVER:
                value = _plain(before.get(column))
                if value is not None:
                    row[column] = value
        rows.append({column: row[column] for column in ALERT_COLUMNS})
    raised = {row["alert_id"] for row in rows}
    for identifier, before in earlier.items():
        if identifier not in raised and pd.notna(before.get("acknowledged_at")):
            rows.append({column: _plain(before.get(column)) for column in ALERT_COLUMNS})
    return rows


def _plain(value):
    """A value read back from the table as the writer takes it (NaN / NaT as None, Timestamps as datetimes)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else value


# -- reading -----------------------------------------------------------------------------------
def _engine(settings: Settings, engine=None):
    if engine is not None:
        return engine
    from healthcare_mlops.runtime.sql_engine import sql_engine

    return sql_engine(settings)


def _table_missing(settings: Settings) -> bool:
    if not settings.is_local:
        return False
    from healthcare_mlops.runtime.storage import LocalTableStore

    return not LocalTableStore(settings).exists(ML_MODEL_ALERTS)


def list_alerts(settings: Settings, include_acknowledged: bool = False, limit: int | None = None,
                engine=None) -> pd.DataFrame:
    """Alerts, newest first; by default only those nobody has acknowledged yet."""
    if _table_missing(settings):
        return pd.DataFrame(columns=list(LIST_COLUMNS))
    where = "" if include_acknowledged else "WHERE acknowledged_at IS NULL "
    sql = (f"SELECT {', '.join(LIST_COLUMNS)} FROM {ML_MODEL_ALERTS} {where}"
           "ORDER BY created_at DESC, window_end DESC, severity, type, column_name")
    if limit:
        sql += f" LIMIT {int(limit)}"
    return _engine(settings, engine).query(sql)


def get_alert(settings: Settings, identifier: str, engine=None) -> dict | None:
    if _table_missing(settings):
        return None
    frame = _engine(settings, engine).query(
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM {ML_MODEL_ALERTS} WHERE alert_id = :alert_id",
        {"alert_id": identifier})
    return None if frame.empty else frame.iloc[0].to_dict()


# -- acknowledging -----------------------------------------------------------------------------
def _is_set(value) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value)) and value is not pd.NaT


def acknowledge(settings: Settings, identifier: str, identity: Identity, comment: str | None = None,
                engine=None) -> dict:
    """Record that ``identity`` acknowledged the alert (operator role); return the updated alert."""
    identity.require("acknowledge")
    identifier = normalise_alert_id(identifier)
    alert = get_alert(settings, identifier, engine)
    if alert is None:
        raise UserError(f"no alert {identifier} in {settings.tables.fqn(ML_MODEL_ALERTS)}")
    if _is_set(alert.get("acknowledged_at")):
        raise UserError(f"alert {identifier} was already acknowledged by {alert['acknowledged_by']} "
                        f"at {alert['acknowledged_at']}")
    comment = (comment or "").strip() or None
    if settings.is_local:
        updated = _acknowledge_local(settings, identifier, identity.user, comment)
    else:
        _engine(settings, engine).execute(
            f"UPDATE {settings.tables.fqn(ML_MODEL_ALERTS)} SET acknowledged_by = :user, "
            "acknowledged_at = current_timestamp(), acknowledged_comment = :comment "
            "WHERE alert_id = :alert_id AND acknowledged_at IS NULL",
            {"user": identity.user, "comment": comment, "alert_id": identifier})
        updated = None
    after = get_alert(settings, identifier, engine) or {}
    if updated == 0 or after.get("acknowledged_by") != identity.user:
        raise UserError(f"alert {identifier} was acknowledged meanwhile by {after.get('acknowledged_by')} "
                        f"at {after.get('acknowledged_at')}")
    return after


def _update_local(settings: Settings, identifiers: list[str], change, attempts: int = 5) -> int:
    """Apply ``change(row) -> bool`` to the local alerts with these ids, one commit per window.

    Each affected window partition is rewritten whole (same rows, changed values) by an
    overwrite whose predicate is the partition, so delta-rs removes whole files and writes
    plain Arrow types. Returns how many rows ``change`` changed.
    """
    import pyarrow as pa

    from healthcare_mlops.runtime.storage import LocalTableStore

    store = LocalTableStore(settings)
    wanted = set(identifiers)
    for _ in range(attempts):
        table = store.delta_table(ML_MODEL_ALERTS)
        version = table.version()
        arrow = table.to_pyarrow_table()
        schema = pa.schema([pa.field(f.name, pa.string() if pa.types.is_string_view(f.type) else f.type)
                            for f in arrow.schema])
        frame = arrow.to_pandas()
        target = frame[frame["alert_id"].isin(wanted)]
        if target.empty:
            return 0
        changed = 0
        writes = []
        for (start, end), _ in target.groupby(["window_start", "window_end"]):
            part = frame[(frame["window_start"] == start) & (frame["window_end"] == end)].copy()
            rows = part.to_dict(orient="records")
            for row in rows:
                if row["alert_id"] in wanted and change(row):
                    changed += 1
            writes.append(((start, end), pd.DataFrame(rows, columns=part.columns)))
        if changed == 0:
            return 0
        if store.delta_table(ML_MODEL_ALERTS).version() != version:
            continue            # someone wrote meanwhile: read again
        for (start, end), rows in writes:
            data = pa.Table.from_pandas(rows[[f.name for f in schema]], schema=schema, preserve_index=False)
            store.write_arrow(data, ML_MODEL_ALERTS, mode="replace_partition",
                              partition={"window_start": _date(start), "window_end": _date(end)},
                              partition_by=["window_start", "window_end"])
        return changed
    raise UserError("the alerts table kept changing while updating it; try again")


def _date(value) -> dt.date:
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def _acknowledge_local(settings: Settings, identifier: str, user: str, comment: str | None) -> int:
    now = dt.datetime.now(dt.timezone.utc)

    def change(row: dict) -> bool:
        if _is_set(row.get("acknowledged_at")):
            return False
        row.update(acknowledged_by=user, acknowledged_at=now, acknowledged_comment=comment)
        return True

    return _update_local(settings, [identifier], change)


# -- the retrain link ----------------------------------------------------------------------------
def record_retrain(settings: Settings, identifiers: list[str], retrain_run_id: str) -> None:
    """Set ``retrain_run_id`` on the alerts that triggered the retrain (one atomic update)."""
    identifiers = [normalise_alert_id(i) for i in identifiers]
    if not identifiers:
        return
    if settings.is_local:
        def change(row: dict) -> bool:
            row["retrain_run_id"] = str(retrain_run_id)
            return True

        _update_local(settings, identifiers, change)
        return
    names = {f"alert_{n}": value for n, value in enumerate(identifiers)}
    statement = (f"UPDATE {settings.tables.fqn(ML_MODEL_ALERTS)} SET retrain_run_id = :retrain_run_id "
                 f"WHERE alert_id IN ({', '.join(':' + n for n in names)})")
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is not None:
        spark.sql(statement, args={"retrain_run_id": str(retrain_run_id), **names})
    else:
        _engine(settings).execute(statement, {"retrain_run_id": str(retrain_run_id), **names})
