"""The model_governance job: validate a version, apply an approver's recorded decision, promote when allowed.

``--model_version N`` governs version N (it must exist; a version older than the champion
is refused unless an approver rejected it: going back is ``governance rollback``); empty
governs the challenger. A decision
recorded in the audit log (the console records approve / reject and starts this job) is
applied here, as the model's owner: the version's tags, the model card, the champion alias
and the serving endpoint. Only a row whose recorded role may take the decision counts, and on
Databricks only when the actor's groups in the workspace still give such a role
(``composition.role_check``).

Exit codes: in ``auto`` mode a challenger that fails a hard check fails the task, so
the pipeline shows red; in ``manual`` mode "waiting for approval" is a distinct,
successful state that the task prints and ``governance status`` shows. A challenger whose
only blockers are floors the champion also misses on the same rows is referred to an
approver in either mode (waiting, with both values in the audit log), not refused.
"""

from __future__ import annotations

from healthcare_mlops.composition import Runtime
from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import audit, decisions
from healthcare_mlops.governance.service import REFERRED_BLOCKER, Governance
from healthcare_mlops.modeling.artifacts import CHALLENGER, CHAMPION

PROMOTED, WAITING, ALREADY_CHAMPION, REJECTED = "promoted", "waiting_for_approval", "already_champion", "rejected"


class GovernanceFailed(UserError):
    """The challenger failed hard checks in auto mode."""


def format_checks(checks) -> str:
    """The checks as a table; the threshold column is as wide as its longest threshold (never cut)."""
    width = max([len("threshold"), *(len(c.threshold) for c in checks)])
    lines = [f"{'check':36} {'value':>14} {'interval':>17} {'threshold':>{width}} {'verdict':>15} {'hard':>5}"]
    for c in checks:
        value = "" if c.value is None else str(c.value)
        interval = f"{c.interval[0]:.3f}-{c.interval[1]:.3f}" if c.interval else ""
        lines.append(f"{c.name:36} {value[:14]:>14} {interval:>17} {c.threshold:>{width}} {c.verdict:>15} "
                     f"{str(c.hard):>5}")
    return "\n".join(lines)


def run(runtime: Runtime, model_version=None) -> str:
    """Govern ``model_version`` (default: the challenger): validate it, apply the decision an
    approver recorded for it (the console records, this job applies as the model's owner), and
    promote it when nothing blocks it."""
    governance: Governance = runtime.governance(check_roles=True)
    governance.recover()          # finish or undo a move a killed run left half-done, before governing
    version = governance.governed_version(model_version)
    decision = governance.latest_decision(version)
    champion = governance.alias(CHAMPION)
    if champion is not None and int(version) < int(champion) and \
            (decision is None or decision["action"] != audit.REJECTED):
        raise UserError(f"version {version} is older than the champion (version {champion}): model_governance "
                        f"promotes forward only (a rejection is still applied); to go back run "
                        f"`healthcare-mlops governance rollback --to-version {version}`")
    validation = governance.validate(version)
    role = "challenger" if governance.alias(CHALLENGER) == version else "given"
    print(f"{governance.model_name} version {version} ({role}), approval mode {governance.approval_mode}")
    print(format_checks(validation.checks))
    decision = governance.apply_decision(version)
    if decision is not None and decision["action"] != audit.PROMOTED:
        print(f"recorded decision: {decision['action']} by {decision['actor']} ({decision['role']}) "
              f"at {decision['event_time']}: {decision['comment']}")
    if governance.alias(CHAMPION) == version:
        print(f"version {version} is already the champion")
        governance.serve_champion(version)    # e.g. a promotion whose endpoint update failed
        return ALREADY_CHAMPION
    if decision is not None and decision["action"] == audit.REJECTED:
        governance.refresh_model_card(version)
        print(f"version {version} was rejected by {decision['actor']}: the champion stays")
        return REJECTED
    blockers = governance.promotion_blockers(version)
    if not blockers:
        approved = decision is not None and decision["action"] in decisions.APPROVALS
        governance.promote(version, comment=f"{decision['action']} by {decision['actor']}: {decision['comment']}"
                           if approved else "all hard checks passed (auto approval)")
        print(f"promoted version {version} to champion")
        return PROMOTED
    referred = governance.refer(version)
    refused = [b for b in blockers if not b.startswith(REFERRED_BLOCKER) and not b.startswith("waiting for approval")]
    if governance.approval_mode == "auto" and refused:
        raise GovernanceFailed(f"version {version} is not promoted: " + "; ".join(blockers))
    if referred:
        print(f"referred to an approver: version {version}: {referred}")
    print(f"waiting for approval: version {version} ({'; '.join(blockers)})")
    return WAITING
