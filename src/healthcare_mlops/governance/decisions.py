"""An approver's decision on a version: recorded in the audit log, applied by whoever owns the model.

Recording needs only the audit table (``model_governance_log``): the console's service
principal may append to it but may not tag a version, move an alias or write a model card.
So the console records the decision here and starts ``model_governance``, which runs as the
model's owner, reads the decision back (``latest_decision``) and applies it. The audit log is
the record the job trusts; a row counts only when its role may take the decision
(``trusted``), and the job can check the actor's role again against the directory
(``composition.approver_check``).
"""

from __future__ import annotations

import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import audit
from healthcare_mlops.governance.checks import Check, hard_failures, referrals
from healthcare_mlops.identity import Identity

APPROVE, REJECT = "approve", "reject"
# The right each recorded decision needs: a row whose role lacks it is ignored.
NEEDS = {audit.APPROVED: APPROVE, audit.OVERRIDDEN: APPROVE, audit.REJECTED: REJECT, audit.PROMOTED: "promote"}
APPROVALS = (audit.APPROVED, audit.OVERRIDDEN)


def trusted(event) -> bool:
    """Whether the row's recorded role may take the row's decision."""
    needed = NEEDS.get(event["action"])
    return needed is not None and Identity(str(event["actor"]), str(event["role"])).may(needed)


def decisions(history: pd.DataFrame) -> pd.DataFrame:
    """The trusted decision rows of a version's history (approve, override, reject, promote), oldest first."""
    if history.empty:
        return history
    mask = history.apply(trusted, axis=1).astype(bool)
    return history[mask]


def latest_decision(history: pd.DataFrame):
    """The latest trusted decision row (a pandas Series), or None."""
    rows = decisions(history)
    return None if rows.empty else rows.iloc[-1]


def recorded_checks(history: pd.DataFrame) -> list[Check] | None:
    """The checks of the version's latest recorded validation, None when it was never validated."""
    validated = history[history["action"] == audit.VALIDATED] if not history.empty else history
    if validated.empty:
        return None
    return [Check(**c) for c in audit.decoded_checks(validated.iloc[-1])]


def require_comment(kind: str, comment: str | None) -> None:
    """A decision says why: refused before anything is read or written."""
    if not comment or not comment.strip():
        raise UserError(f"{kind} needs a --comment saying why")


def decision_event(log: audit.AuditLog, identity: Identity, version: str, kind: str, comment: str,
                   override_reason: str | None = None, checks: list[Check] | None = None) -> dict:
    """The audit row of ``identity``'s decision on ``version``, refused when it may not be taken.

    ``checks`` default to the latest recorded validation; a version never validated cannot be
    decided on (``model_governance`` validates it first)."""
    identity.require(kind)
    require_comment(kind, comment)
    if checks is None:
        checks = recorded_checks(log.history(version))
    if checks is None:
        raise UserError(f"version {version} has no recorded validation: run the model_governance job "
                        f"(--param model_version={version}) first")
    failures = hard_failures(checks)
    reason = (override_reason or "").strip() or None
    passed = not failures and not referrals(checks)
    if kind == REJECT:
        return log.event(version, audit.REJECTED, identity, checks=checks, comment=comment, hard_checks_passed=passed)
    if failures and reason is None:
        raise UserError(f"version {version} fails hard checks ({', '.join(c.name for c in failures)}); approving "
                        "it needs --override-reason, which is recorded")
    # A referred floor (the champion misses it too) is the approver's to decide: no override.
    action = audit.OVERRIDDEN if failures else audit.APPROVED
    return log.event(version, action, identity, checks=checks, comment=comment,
                     override_reason=reason if failures else None, hard_checks_passed=passed)


def record_decision(log: audit.AuditLog, identity: Identity, version: str, kind: str, comment: str,
                    override_reason: str | None = None, checks: list[Check] | None = None) -> dict:
    """Append the decision's audit row (refused before anything is written); return the row."""
    event = decision_event(log, identity, version, kind, comment, override_reason, checks)
    log.record(event)
    return event


def approved_not_promoted(history: pd.DataFrame) -> bool:
    """Whether the version's latest trusted decision is an approval no promotion has followed yet
    (the model_governance run that applies it has not finished)."""
    last = latest_decision(history)
    return last is not None and last["action"] in APPROVALS
