"""The model_governance job: validate the challenger, record the audit, promote when allowed.

Exit codes: in ``auto`` mode a challenger that fails a hard check fails the task, so
the pipeline shows red; in ``manual`` mode "waiting for approval" is a distinct,
successful state that the task prints and ``governance status`` shows. A challenger whose
only blockers are floors the champion also misses on the same rows is referred to an
approver in either mode (waiting, with both values in the audit log), not refused.
"""

from __future__ import annotations

from healthcare_mlops.composition import champion_endpoint
from healthcare_mlops.errors import UserError
from healthcare_mlops.governance.service import REFERRED_BLOCKER, Governance
from healthcare_mlops.modeling.artifacts import CHAMPION
from healthcare_mlops.identity import job_identity
from healthcare_mlops.settings import Settings

PROMOTED, WAITING, ALREADY_CHAMPION = "promoted", "waiting_for_approval", "already_champion"


class GovernanceFailed(UserError):
    """The challenger failed hard checks in auto mode."""


def format_checks(checks) -> str:
    lines = [f"{'check':36} {'value':>14} {'interval':>17} {'threshold':>34} {'verdict':>15} {'hard':>5}"]
    for c in checks:
        value = "" if c.value is None else str(c.value)
        interval = f"{c.interval[0]:.3f}-{c.interval[1]:.3f}" if c.interval else ""
        lines.append(f"{c.name:36} {value[:14]:>14} {interval:>17} {c.threshold[:34]:>34} {c.verdict:>15} "
                     f"{str(c.hard):>5}")
    return "\n".join(lines)


def run(settings: Settings) -> str:
    governance = Governance(settings, job_identity(settings), champion_endpoint(settings))
    validation = governance.validate()
    version = validation.version
    print(f"{settings.model_name} version {version} (challenger), approval mode {governance.approval_mode}")
    print(format_checks(validation.checks))
    if governance.alias(CHAMPION) == version:
        print(f"version {version} is already the champion")
        governance.serve_champion(version)    # e.g. approved in the console, which leaves the endpoint to this job
        return ALREADY_CHAMPION
    blockers = governance.promotion_blockers(version)
    if not blockers:
        governance.promote(version, comment="all hard checks passed (auto approval)")
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
