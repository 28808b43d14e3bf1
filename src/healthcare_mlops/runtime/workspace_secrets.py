"""Secrets a job reads from a Databricks secret scope, never from its own parameters.

A job parameter is shown to everyone who may view the job and its runs; a secret scope's
value only to principals with READ on the scope. ``dbutils.secrets`` is the runtime's own on
a cluster (databricks-sdk hands it over) and the REST call ``GET /api/2.0/secrets/get``
elsewhere.
"""

from __future__ import annotations

from healthcare_mlops.errors import UserError


def read_secret(client, scope: str, key: str) -> str:
    """The text of secret ``key`` in ``scope``, or a ``UserError`` that says how to create it."""
    try:
        value = client.dbutils.secrets.get(scope=scope, key=key)
    except Exception as error:     # the runtime's dbutils and the REST client raise different types
        raise UserError(
            f"cannot read the secret '{key}' in the secret scope '{scope}' ({error}); create it with "
            f"`databricks secrets create-scope {scope}` and `databricks secrets put-secret {scope} {key}`, "
            f"and give the job's run-as principal READ on the scope "
            f"(`databricks secrets put-acl {scope} <principal> READ`)") from error
    if not value:
        raise UserError(f"the secret '{key}' in the secret scope '{scope}' is empty")
    return value
