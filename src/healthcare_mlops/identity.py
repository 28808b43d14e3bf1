"""Who is acting and in which role: viewer, operator (acknowledge, run now), approver.

On Databricks Apps the user comes from the ``X-Forwarded-Email`` header; locally from
$HEALTHCARE_MLOPS_USER. A deployer maps emails or groups to roles with the bundle
variables ``approvers_group`` and ``operators_group`` (comma-separated groups or emails); locally the configured
role is $HEALTHCARE_MLOPS_ROLE (default ``approver``: the developer owns the laptop).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import Settings

VIEWER, OPERATOR, APPROVER = "viewer", "operator", "approver"
ROLES = (VIEWER, OPERATOR, APPROVER)
USER_ENV, ROLE_ENV = "HEALTHCARE_MLOPS_USER", "HEALTHCARE_MLOPS_ROLE"
# What each role may do; a higher role may do everything a lower one may.
ALLOWED = {VIEWER: set(), OPERATOR: {"acknowledge", "run_job", "read_identifiers"},
           APPROVER: {"acknowledge", "run_job", "read_identifiers", "approve", "reject", "promote", "rollback"}}


def roles_allowed(action: str) -> list[str]:
    """The roles whose rights include ``action``, lowest first (for help texts and errors)."""
    return [role for role in ROLES if action in ALLOWED[role]]


@dataclass(frozen=True)
class Identity:
    user: str
    role: str

    def require(self, action: str) -> None:
        """Refuse ``action`` unless the role allows it (the server-side check behind every button)."""
        if action not in ALLOWED.get(self.role, set()):
            needed = next(role for role in ROLES if action in ALLOWED[role])
            raise UserError(f"{action} needs the {needed} role; {self.user} has the {self.role} role")


def _members(value) -> set[str]:
    return {item.strip().lower() for item in str(value or "").split(",") if item.strip()}


def role_for(user: str, groups: list[str], settings: Settings) -> str:
    """The highest role whose configured members include the user or one of their groups."""
    names = {user.lower(), *(g.lower() for g in groups)}
    for role, variable in ((APPROVER, "approvers_group"), (OPERATOR, "operators_group")):
        if names & _members(settings.variables.get(variable)):
            return role
    return VIEWER


def local_identity() -> Identity:
    user = os.environ.get(USER_ENV) or f"{getpass.getuser()}@localhost"
    role = os.environ.get(ROLE_ENV, APPROVER)
    if role not in ROLES:
        raise UserError(f"${ROLE_ENV} must be one of {', '.join(ROLES)}, not '{role}'")
    return Identity(user=user, role=role)


def job_identity(settings: Settings) -> Identity:
    """A scheduled job acts as the pipeline itself; it may validate and auto-promote only."""
    return Identity(user=f"job:{settings.target}", role="system")
