"""Governance thresholds, set by the bundle's variables (the one place they are set).

Locally they are the variables' defaults; on Databricks the job receives them as task
parameters, so a deployer changes a threshold per target in ``databricks.yml``. The edge
reads them (``parameters.governance_thresholds``); the checks take the typed object.
"""

from __future__ import annotations

from dataclasses import dataclass

from healthcare_mlops.errors import UserError


@dataclass(frozen=True)
class GovernanceThresholds:
    r2_min: float
    risk_score_mae_max: float
    high_risk_capture_min: float
    fairness_mae_ratio_max: float
    calibration_ratio_min: float
    calibration_ratio_max: float
    fairness_min_group_size: int
    four_fifths_min: float
    champion_mae_tolerance: float
    fairness_bootstrap_samples: int
    fairness_ci_level: float


AUTO_APPROVAL, MANUAL_APPROVAL = "auto", "manual"


def approval_mode(variables: dict) -> str:
    """The bundle variable ``approval_mode``: ``auto`` (a passing challenger is promoted) when unset,
    as databricks.yml defaults it; anything but ``auto`` or ``manual`` is refused."""
    mode = str(variables.get("approval_mode") or AUTO_APPROVAL).strip()
    if mode not in (AUTO_APPROVAL, MANUAL_APPROVAL):
        raise UserError(f"approval_mode must be '{AUTO_APPROVAL}' or '{MANUAL_APPROVAL}', not {mode!r}")
    return mode
