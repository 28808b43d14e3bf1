"""The core's typed thresholds, built once from the bundle's variables (or a job task's parameters).

The bundle sets every threshold (``databricks.yml``'s variables, overridable per target and
per run). The edge (tasks, the CLI, the console) calls these builders with the settings'
``variables`` and hands the typed object to the core, which never reads variables itself.
A threshold that is missing, not a number or not finite is refused here, naming it, for
every caller alike.
"""

from __future__ import annotations

import math
from dataclasses import fields

from healthcare_mlops.errors import UserError
from healthcare_mlops.governance.thresholds import GovernanceThresholds
from healthcare_mlops.monitoring.evaluation import MonitoringThresholds
from healthcare_mlops.monitoring.serving_traffic import TrafficThresholds
from healthcare_mlops.scoring.rules import ScoringThresholds


def numbers_from_variables(cls, variables: dict, kind: str):
    """The frozen dataclass ``cls`` with each field read from the bundle variable of its name.

    Every field is a threshold: required, and a number (``int`` fields accept "30" and
    "30.0", as a bundle may pass either). ``kind`` names the group in errors.
    """
    values = {}
    for spec in fields(cls):
        raw = variables.get(spec.name)
        if raw is None or raw == "":
            raise UserError(f"{kind} threshold '{spec.name}' is not set (a bundle variable)")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise UserError(f"{kind} threshold '{spec.name}' must be a number, not {raw!r}") from None
        if not math.isfinite(number):
            raise UserError(f"{kind} threshold '{spec.name}' must be a finite number, not {raw!r}")
        values[spec.name] = int(number) if spec.type in (int, "int") else number
    return cls(**values)


def scoring_thresholds(variables: dict) -> ScoringThresholds:
    """The batch scoring rules' thresholds."""
    return numbers_from_variables(ScoringThresholds, variables, "scoring")


def monitoring_thresholds(variables: dict) -> MonitoringThresholds:
    """The monitoring job's and the console's thresholds."""
    return numbers_from_variables(MonitoringThresholds, variables, "monitoring")


def traffic_thresholds(variables: dict) -> TrafficThresholds:
    """The real-time traffic's thresholds (monitoring's judgement of ``serving_payload``)."""
    return numbers_from_variables(TrafficThresholds, variables, "monitoring")


def governance_thresholds(variables: dict) -> GovernanceThresholds:
    """The governance checks' thresholds."""
    return numbers_from_variables(GovernanceThresholds, variables, "governance")
