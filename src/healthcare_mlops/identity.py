"""Who is acting and in which role: the roles matrix, decided here and nowhere else.

Roles, lowest first; each may do everything the ones below it may:

| role     | adds                                                                     |
|----------|--------------------------------------------------------------------------|
| viewer   | reading the console's pages                                              |
| analyst  | ``export`` (the Risk page's CSV download)                                |
| operator | ``acknowledge``, ``run_job``, ``validate``, ``reproduce``, ``repair``, ``read_identifiers``, ``load`` |
| approver | ``approve``, ``reject``, ``promote``, ``rollback``                       |

A scheduled job acts as ``system``: it validates, reproduces, repairs, promotes (auto approval) and
loads members (the ``load_members`` job) only.

On Databricks Apps the user comes from the ``X-Forwarded-Email`` header; against a workspace
target from anywhere else, the user signed in with the Databricks CLI's auth. Either way the
role comes from the bundle variables ``approvers_group``, ``operators_group`` and
``analysts_group`` (comma-separated groups or e-mails, ``role_for``). Locally the user is
$HEALTHCARE_MLOPS_USER and the role $HEALTHCARE_MLOPS_ROLE, by default ``approver`` (the
developer owns the laptop), but ``viewer`` when the console is exposed to the network
(``healthcare-mlops app --expose`` sets $HEALTHCARE_MLOPS_EXPOSED): whoever reaches it then is
not the laptop's owner.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass

from healthcare_mlops.errors import UserError

VIEWER, ANALYST, OPERATOR, APPROVER = "viewer", "analyst", "operator", "approver"
ROLES = (VIEWER, ANALYST, OPERATOR, APPROVER)          # lowest first
SYSTEM = "system"                                      # a scheduled job (job_identity)
USER_ENV, ROLE_ENV = "HEALTHCARE_MLOPS_USER", "HEALTHCARE_MLOPS_ROLE"
EXPOSED_ENV = "HEALTHCARE_MLOPS_EXPOSED"               # "1": the local console listens beyond loopback
# What each role adds to the role below it.
GRANTS = {
    VIEWER: (),
    ANALYST: ("export",),
    OPERATOR: ("acknowledge", "run_job", "validate", "reproduce", "repair", "read_identifiers", "load"),
    APPROVER: ("approve", "reject", "promote", "rollback"),
}
# What each identity may do: a role's own grants and those of every role below it.
ALLOWED = {role: {action for lower in ROLES[: index + 1] for action in GRANTS[lower]}
           for index, role in enumerate(ROLES)}
ALLOWED[SYSTEM] = {"validate", "reproduce", "repair", "promote", "load"}
# The bundle variable naming each role's members, highest role first (role_for takes the first match).
ROLE_GROUPS = ((APPROVER, "approvers_group"), (OPERATOR, "operators_group"), (ANALYST, "analysts_group"))


@dataclass(frozen=True)
class Identity:
    user: str
    role: str

    def may(self, action: str) -> bool:
        """Whether the role allows ``action`` (what a page asks before it shows a button)."""
        return action in ALLOWED.get(self.role, set())

    def require(self, action: str) -> None:
        """Refuse ``action`` unless the role allows it (the server-side check behind every button)."""
        if not self.may(action):
            raise UserError(f"{action} needs the {role_needed(action)} role; {self.user} has the {self.role} role")


def role_needed(action: str) -> str:
    """The lowest role that may do ``action``."""
    return next(role for role in ROLES if action in ALLOWED[role])


def _members(value) -> set[str]:
    return {item.strip().lower() for item in str(value or "").split(",") if item.strip()}


@dataclass(frozen=True)
class RoleMembers:
    """Who holds each role: per role, highest first, the lower-cased groups and e-mails configured for it."""

    by_role: tuple[tuple[str, frozenset[str]], ...]

    @classmethod
    def from_variables(cls, variables: Mapping) -> "RoleMembers":
        """From the bundle variables ``approvers_group``, ``operators_group``, ``analysts_group``."""
        return cls(tuple((role, frozenset(_members(variables.get(variable)))) for role, variable in ROLE_GROUPS))


def role_for(user: str, groups: list[str], members: RoleMembers) -> str:
    """The highest role whose configured members include the user or one of their groups."""
    names = {user.lower(), *(g.lower() for g in groups)}
    for role, configured in members.by_role:
        if names & configured:
            return role
    return VIEWER


def local_identity() -> Identity:
    """The configured user and role on this machine (see the module's docstring for the defaults)."""
    user = os.environ.get(USER_ENV) or f"{getpass.getuser()}@localhost"
    exposed = os.environ.get(EXPOSED_ENV) == "1"
    role = os.environ.get(ROLE_ENV) or (VIEWER if exposed else APPROVER)
    if role not in ROLES:
        raise UserError(f"${ROLE_ENV} must be one of {', '.join(ROLES)}, not '{role}'")
    return Identity(user=user, role=role)


def job_identity(target: str) -> Identity:
    """A scheduled job on ``target`` acts as the pipeline itself; it may validate, repair and auto-promote only."""
    return Identity(user=f"job:{target}", role=SYSTEM)
