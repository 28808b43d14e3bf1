"""The model_governance_log table: who changed what, when and why, with the checks as they were.

Every state change a person or a job makes writes one row with the actor and their role:
validate, approve / override, reject, promote, roll back, refer, reproduce, repair an interrupted
promotion, acknowledge an alert, start a job, and each local run's start and end. The action names are
defined here, once.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd

from healthcare_mlops.identity import Identity
from healthcare_mlops.tables import MODEL_GOVERNANCE_LOG, MODEL_GOVERNANCE_LOG_SPEC

VALIDATED, APPROVED, REJECTED, PROMOTED, ROLLED_BACK, OVERRIDDEN = (
    "validated", "approved", "rejected", "promoted", "rolled back", "overridden")
REFERRED = "referred"      # a floor the champion misses too: the decision went to an approver
RAN_JOB = "ran job"        # a person started a job, from the console or the CLI (version is empty)
ACKNOWLEDGED = "acknowledged alert"   # a person acknowledged a monitoring alert (version is empty)
REPAIRED = "repaired"      # an interrupted promotion was finished or undone
REPRODUCED = "reproduced"  # a version was rebuilt from its lineage; the comment holds the result
JOB_STARTED, JOB_ENDED = "job run started", "job run ended"   # every local run, however it ends (run_guard.py)

AUDIT_SCHEMA = MODEL_GOVERNANCE_LOG_SPEC.arrow_schema()


def audit_event(model_name: str, version: str, action: str, actor: str, role: str, approval_mode: str,
                checks: list | None = None, comment: str | None = None, override_reason: str | None = None,
                hard_checks_passed: bool | None = None, event_id: str | None = None) -> dict:
    return {"event_id": event_id or uuid.uuid4().hex, "model_name": model_name, "version": str(version),
            "action": action, "actor": actor, "role": role,
            "event_time": dt.datetime.now(dt.timezone.utc), "comment": comment,
            "override_reason": override_reason, "hard_checks_passed": hard_checks_passed,
            "checks": json.dumps([c.as_dict() if hasattr(c, "as_dict") else c for c in checks or []]),
            "approval_mode": approval_mode}


@dataclass(frozen=True)
class AuditLog:
    """The audit rows of one model in ``catalog`` (any ``TableCatalog``; runtime/catalog_base.py).

    ``approval_mode`` is the one every row records (governance/thresholds.py)."""

    catalog: Any
    model_name: str
    approval_mode: str

    def record(self, event: dict) -> None:
        self.catalog.append_rows(MODEL_GOVERNANCE_LOG, [event], AUDIT_SCHEMA)

    def event(self, version: str, action: str, identity: Identity, **details) -> dict:
        """A row of this model by ``identity`` (``details``: those of ``audit_event``)."""
        return audit_event(self.model_name, version, action, identity.user, identity.role, self.approval_mode,
                           **details)

    def record_action(self, identity: Identity, action: str, comment: str) -> None:
        """One row for a change that is not about a model version (an alert acknowledged, a job started)."""
        self.record(self.event("", action, identity, comment=comment))

    def record_job_run(self, identity: Identity, job_key: str, run_id: str | None, params: dict) -> None:
        """Who started which run of ``job_key`` (the run itself names only its trigger, or on Databricks the app)."""
        comment = job_key + (f" run {run_id}" if run_id else "") + \
            (f" with {json.dumps(params, sort_keys=True)}" if params else "")
        self.record_action(identity, RAN_JOB, comment)

    def history(self, version: str | None = None) -> pd.DataFrame:
        """The model's audit events, oldest first (optionally of one version)."""
        if not self.catalog.exists(MODEL_GOVERNANCE_LOG):
            return pd.DataFrame(columns=AUDIT_SCHEMA.names)
        where = [("model_name", "=", self.model_name)]
        where += [("version", "=", str(version))] if version is not None else []
        frame = self.catalog.read_pandas(MODEL_GOVERNANCE_LOG, where)
        return frame.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)


def decoded_checks(event: pd.Series) -> list[dict]:
    return json.loads(event["checks"]) if isinstance(event.get("checks"), str) and event["checks"] else []
