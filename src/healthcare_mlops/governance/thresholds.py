"""Governance thresholds, read from the bundle's variables (the one place they are set).

Locally they are the variables' defaults; on Databricks the job receives them as task
parameters, so a deployer changes a threshold per target in ``databricks.yml``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

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

    @classmethod
    def from_variables(cls, variables: dict) -> "GovernanceThresholds":
        values = {}
        for spec in fields(cls):
            raw = variables.get(spec.name)
            if raw is None or raw == "":
                raise UserError(f"governance threshold '{spec.name}' is not set (a bundle variable)")
            try:
                values[spec.name] = int(raw) if spec.type in (int, "int") else float(raw)
            except (TypeError, ValueError):
                raise UserError(f"governance threshold '{spec.name}' must be a number, not {raw!r}") from None
        return cls(**values)
