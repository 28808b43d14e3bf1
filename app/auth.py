"""Who is using the console and what they may do (the roles matrix is ``healthcare_mlops.identity``).

Which source names the user is decided in ``composition.console_identity``:

- on Databricks Apps the user is the ``X-Forwarded-Email`` header and their role comes from the
  bundle variables ``approvers_group`` / ``operators_group`` / ``analysts_group`` (groups or
  e-mails, ``identity.role_for``); the user's groups are read with their forwarded token
  (``X-Forwarded-Access-Token``, scope ``iam.current-user:read``);
- against a workspace target off Databricks (``healthcare-mlops --target prod app`` on a
  laptop), the user signed in with the Databricks CLI's auth (``current_user.me()``) and the
  role of their groups; request headers are not trusted there;
- locally ``identity.local_identity()`` ($HEALTHCARE_MLOPS_USER, $HEALTHCARE_MLOPS_ROLE).

Pages hide a button the role may not use (``can``); ``app.actions`` refuses the action
server-side all the same (``Identity.require``).
"""

from __future__ import annotations

import hashlib
import os

import streamlit as st

from app import data
from app.data import EMAIL_HEADER, TOKEN_HEADER
from healthcare_mlops import composition
from healthcare_mlops.identity import VIEWER, Identity, RoleMembers, role_for, role_needed

__all__ = ["can", "current_identity", "role_needed"]

ANONYMOUS = "anonymous"


@st.cache_data(ttl=300, show_spinner=False, max_entries=256)
def _groups(email: str, token_hash: str, _token: str | None) -> tuple[str, ...]:
    """The user's group names: with their own token when forwarded, else looked up by the app."""
    from databricks.sdk.errors import DatabricksError   # here: databricks-sdk takes ~1 s to import

    try:
        if _token:
            from databricks.sdk import WorkspaceClient
            from databricks.sdk.core import Config

            me = WorkspaceClient(host=Config().host, token=_token, auth_type="pat").current_user.me()
            return tuple(g.display for g in me.groups or [] if g.display)
        users = data.workspace_client().users.list(filter=f'userName eq "{email}"', attributes="groups")
        return tuple(g.display for user in users for g in (user.groups or []) if g.display)
    except DatabricksError:   # no permission to read groups: the role then follows the e-mail alone
        return ()


def _forwarded_identity() -> Identity:
    """The user Databricks Apps forwards in the request's headers, with the role of their groups."""
    email = data.request_header(EMAIL_HEADER)
    if not email:
        return Identity(ANONYMOUS, VIEWER)
    token = data.request_header(TOKEN_HEADER)
    digest = hashlib.sha256(token.encode()).hexdigest()[:16] if token else ""
    groups = list(_groups(email, digest, token))
    return Identity(email, role_for(email, groups, RoleMembers.from_variables(data.console_settings().variables)))


@st.cache_data(ttl=300, show_spinner=False, max_entries=8)
def _signed_in_identity(target: str) -> Identity:
    """The Databricks CLI's signed-in user and their role (one ``current_user.me()`` per 5 minutes)."""
    settings = data.console_settings()
    return composition.cli_identity(settings, data.workspace_client)


def current_identity() -> Identity:
    """The user of this browser session and their role (see the module's docstring)."""
    settings = data.console_settings()
    return composition.console_identity(settings, os.environ, _forwarded_identity,
                                        lambda: _signed_in_identity(settings.target))


def can(identity: Identity, action: str) -> bool:
    """Whether to show the button for ``action`` (the action checks again on the server)."""
    return identity.may(action)
