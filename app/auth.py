"""Who is using the console and what they may do.

On Databricks Apps the user is the ``X-Forwarded-Email`` header and their role comes
from the bundle variables ``approvers_group`` / ``operators_group`` (groups or e-mails,
``identity.role_for``); the user's groups are read with their forwarded token
(``X-Forwarded-Access-Token``, scope ``iam.current-user:read``). Locally the user and
role are ``identity.local_identity()`` ($HEALTHCARE_MLOPS_USER, $HEALTHCARE_MLOPS_ROLE).

Pages hide a button the role may not use (``can``); ``app.actions`` refuses the action
server-side all the same (``Identity.require``).
"""

from __future__ import annotations

import hashlib

import streamlit as st
from databricks.sdk.errors import DatabricksError

from app import data
from app.data import EMAIL_HEADER, TOKEN_HEADER
from healthcare_mlops.identity import ALLOWED, VIEWER, Identity, local_identity, role_for

ANONYMOUS = "anonymous"


@st.cache_data(ttl=300, show_spinner=False, max_entries=256)
def _groups(email: str, token_hash: str, _token: str | None) -> tuple[str, ...]:
    """The user's group names: with their own token when forwarded, else looked up by the app."""
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


def current_identity() -> Identity:
    """The user of this browser session and their role."""
    if not data.facts().forwarded_identity:
        return local_identity()
    email = data.request_header(EMAIL_HEADER)
    if not email:
        return Identity(ANONYMOUS, VIEWER)
    token = data.request_header(TOKEN_HEADER)
    digest = hashlib.sha256(token.encode()).hexdigest()[:16] if token else ""
    groups = list(_groups(email, digest, token))
    return Identity(email, role_for(email, groups, data.console_settings()))


def can(identity: Identity, action: str) -> bool:
    """Whether to show the button for ``action`` (the action checks again on the server)."""
    return action in ALLOWED.get(identity.role, set())
