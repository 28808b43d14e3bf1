"""Alerts: their stable ids, listing, acknowledgement (the audit record) and the retrain link.

An alert's id is a UUID derived from (catalog.schema, window, type, column): a rerun of a
window raises the same alert under the same id, and the run carries the earlier row's
``created_at``, acknowledgement and ``retrain_run_id`` over, so acknowledging survives a
rerun and a rerun does not trigger a second retrain.

Acknowledging is one conditional update through the table catalog (``... WHERE alert_id
= X AND acknowledged_at IS NULL``): an ``UPDATE`` on Databricks, one delta-rs commit
locally that checks the version it read; whoever comes second is told who acknowledged
first. ``acknowledged_by`` / ``acknowledged_at`` (and the optional comment) are kept on the
alert, and the acknowledgement is one row of the audit table (``governance/audit.py``) with
the user and role; the table's Delta history keeps every change.
Callers: the CLI (``healthcare-mlops alerts``) and the console, each with its identity.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import audit
from healthcare_mlops.identity import Identity
from healthcare_mlops.monitoring.contract import ALERT_COLUMNS
from healthcare_mlops.monitoring.evaluation import Verdict, details_json
from healthcare_mlops.runtime.catalog import audit_log, table_catalog
from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import ML_MODEL_ALERTS, ML_MODEL_ALERTS_SPEC

ALERT_NAMESPACE = uuid.UUID("6f0c1a52-8f4e-4a8e-9a55-2b1f6d0e7c31")
CARRIED_OVER = ("created_at", "acknowledged_by", "acknowledged_at", "acknowledged_comment", "retrain_run_id")
LIST_COLUMNS = ("alert_id", "created_at", "window_start", "window_end", "type", "severity", "column_name",
                "value", "threshold", "message", "acknowledged_by", "acknowledged_at", "retrain_run_id")


def alert_arrow_schema():
    """``ml_model_alerts`` as an Arrow schema (for writers without Spark)."""
    return ML_MODEL_ALERTS_SPEC.arrow_schema()


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
def _alerts(settings: Settings, where: list[tuple]) -> pd.DataFrame:
    """The alert rows matching ``where`` (none when the table does not exist yet)."""
    catalog = table_catalog(settings)
    if not catalog.exists(ML_MODEL_ALERTS):
        return pd.DataFrame(columns=list(ALERT_COLUMNS))
    return catalog.read_pandas(ML_MODEL_ALERTS, where, list(ALERT_COLUMNS))


def list_alerts(settings: Settings, include_acknowledged: bool = False, limit: int | None = None) -> pd.DataFrame:
    """Alerts, newest first; by default only those nobody has acknowledged yet."""
    frame = _alerts(settings, [] if include_acknowledged else [("acknowledged_at", "is null", None)])
    frame = frame.sort_values(["created_at", "window_end", "severity", "type", "column_name"],
                              ascending=[False, False, True, True, True], kind="stable")
    return frame[list(LIST_COLUMNS)].head(limit or len(frame)).reset_index(drop=True)


def get_alert(settings: Settings, identifier: str) -> dict | None:
    frame = _alerts(settings, [("alert_id", "=", identifier)])
    return None if frame.empty else frame.iloc[0].to_dict()


# -- acknowledging -----------------------------------------------------------------------------
def _is_set(value) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value)) and value is not pd.NaT


def acknowledge(settings: Settings, identifier: str, identity: Identity, comment: str | None = None) -> dict:
    """Record that ``identity`` acknowledged the alert (operator role); return the updated alert."""
    identity.require("acknowledge")
    identifier = normalise_alert_id(identifier)
    alert = get_alert(settings, identifier)
    if alert is None:
        raise UserError(f"no alert {identifier} in {settings.tables.fqn(ML_MODEL_ALERTS)}")
    if _is_set(alert.get("acknowledged_at")):
        raise UserError(f"alert {identifier} was already acknowledged by {alert['acknowledged_by']} "
                        f"at {alert['acknowledged_at']}")
    comment = (comment or "").strip() or None
    updated = table_catalog(settings).update(
        ML_MODEL_ALERTS, {"acknowledged_by": identity.user, "acknowledged_at": dt.datetime.now(dt.timezone.utc),
                          "acknowledged_comment": comment},
        [("alert_id", "=", identifier), ("acknowledged_at", "is null", None)])
    after = get_alert(settings, identifier) or {}
    if updated == 0 or after.get("acknowledged_by") != identity.user:
        raise UserError(f"alert {identifier} was acknowledged meanwhile by {after.get('acknowledged_by')} "
                        f"at {after.get('acknowledged_at')}")
    audit_log(settings).record_action(identity, audit.ACKNOWLEDGED,
                                      f"{alert['type']} alert {identifier}" + (f": {comment}" if comment else ""))
    return after


# -- the retrain link ----------------------------------------------------------------------------
def record_retrain(settings: Settings, identifiers: list[str], retrain_run_id: str) -> None:
    """Set ``retrain_run_id`` on the alerts that triggered the retrain (one atomic update)."""
    identifiers = [normalise_alert_id(i) for i in identifiers]
    if not identifiers:
        return
    table_catalog(settings).update(ML_MODEL_ALERTS, {"retrain_run_id": str(retrain_run_id)},
                                   [("alert_id", "in", identifiers)])
