"""Real-time scoring of the champion: the MLflow scoring server locally, Model Serving on Databricks.

Both serve the same registered pyfunc, so both take the same request and return the same
fields (the model's output: ``predicted_annual_charges``, ``risk_score``,
``risk_category``, ``interval_lower``, ``interval_upper``)::

    POST /invocations   {"dataframe_records": [{"age": 35, "bmi": 28.5, "children": 1,
                                                "smoker": false, "region": "northeast"}]}
                        {"dataframe_split": {"columns": [...], "data": [[...]]}}
    -> {"predictions": [{"predicted_annual_charges": ..., "risk_score": ..., ...}]}

A bad request (a missing field, a wrong type, a value outside the input contract, a
prohibited field such as ``sex``) gets HTTP 400 with JSON naming each refused record and
field; ``"params": {"on_error": "skip"}`` scores the valid records and returns each refused
one's error in its place (``modeling/scoring_request.py``). The batch job's business rules (floor, review
flags) are not applied here; see ``scoring/rules.py``.

Locally, ``healthcare-mlops serve`` runs MLflow's scoring server for the audited champion
(``governance/champion.py``: never a half-moved alias) behind a guard that bounds and checks
each request (``scoring/http_server.py``, ``local_server_command``). On Databricks the
promotion step calls
``deploy_champion_endpoint``, which creates the serving endpoint named by the bundle
variable ``serving_endpoint_name`` the first time and points it at the new champion
afterwards, and grants the console app's service principal ``CAN_QUERY`` on it; creating
it there rather than declaring it in the bundle means a first deploy, before any model
version exists, does not fail.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

from healthcare_mlops.settings import Settings, development_endpoint_name

# `serve`'s port and the demo's: not MLflow's 5000, which macOS's AirPlay receiver holds.
DEFAULT_SCORING_PORT = 5001
ENDPOINT_VARIABLE = "serving_endpoint_name"
APP_VARIABLE = "app_name"
WORKLOAD_SIZE = "Small"
# How long a promotion waits for the endpoint to be ready: the SDK's default is 20 minutes, said
# here so that the model_governance task timeout (resources/jobs.yml) can leave room for it.
ENDPOINT_WAIT = dt.timedelta(minutes=20)


def champion_version(settings: Settings, client=None) -> str:
    """The audited champion's version (never a half-moved alias), or a UserError saying how to get one."""
    from healthcare_mlops.governance.champion import resolve_champion
    from healthcare_mlops.runtime.catalog import audit_log
    from healthcare_mlops.runtime.model_registry import model_registry

    registry = model_registry(settings, None if client is None else lambda: client)
    return str(resolve_champion(audit_log(settings), registry).version)


def local_server_command(settings: Settings, port: int, host: str,
                         version: str | None = None) -> tuple[list[str], dict, str]:
    """(argv, environment, version) of the guarded MLflow scoring server for the champion."""
    version = version or champion_version(settings)
    argv = [sys.executable, "-m", "healthcare_mlops.scoring.http_server", "--model-uri",
            f"models:/{settings.model_name}/{version}", "--port", str(int(port)), "--host", host]
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri, "MLFLOW_REGISTRY_URI": settings.registry_uri}
    return argv, env, version


def endpoint_name(settings: Settings, resolve: bool = True) -> str | None:
    """The target's endpoint name; a per-user one (dev) as its deploy resolved it (or as written)."""
    name = str(settings.variables.get(ENDPOINT_VARIABLE) or "").strip()
    if resolve and "${" in name:
        name = development_endpoint_name(name)
    return name or None


def served_entity(settings: Settings, version) -> object:
    """The endpoint's one served entity: the Unity Catalog model version, small, scaling to zero."""
    from databricks.sdk.service.serving import ServedEntityInput

    return ServedEntityInput(entity_name=settings.model_name, entity_version=str(version),
                             workload_size=WORKLOAD_SIZE, scale_to_zero_enabled=True)


def served_versions(endpoint) -> set[tuple[str, str]]:
    """(model name, version) of every entity an endpoint (``ServingEndpointDetailed``) serves now."""
    entities = (endpoint.config.served_entities if endpoint.config else None) or []
    return {(e.entity_name, str(e.entity_version)) for e in entities}


def deploy_champion_endpoint(settings: Settings, version, client=None) -> dict | None:
    """Create the serving endpoint for the champion ``version``, or point the existing one at it.

    ``client`` is a ``databricks.sdk.WorkspaceClient`` (default: one from the environment,
    as a job or app authenticates). An endpoint that already serves exactly that version is
    left alone, so calling this again after a failed update is safe. Returns what was
    requested, or None when no endpoint name is configured.
    """
    from databricks.sdk.errors import NotFound
    from databricks.sdk.service.serving import EndpointCoreConfigInput

    name = endpoint_name(settings)
    if name is None:
        print(f"no serving endpoint configured ({ENDPOINT_VARIABLE} is empty): version {version} "
              "is not served in real time")
        return None
    if client is None:
        from databricks.sdk import WorkspaceClient

        client = WorkspaceClient()
    entity = served_entity(settings, version)
    try:
        existing = client.serving_endpoints.get(name)
    except NotFound:
        client.serving_endpoints.create_and_wait(
            name=name, config=EndpointCoreConfigInput(name=name, served_entities=[entity]), timeout=ENDPOINT_WAIT)
        action = "created"
    else:
        if served_versions(existing) == {(settings.model_name, str(version))}:
            action = "unchanged"
        else:
            client.serving_endpoints.update_config_and_wait(name=name, served_entities=[entity],
                                                            timeout=ENDPOINT_WAIT)
            action = "updated"
    print(f"serving endpoint {name} {action}: {settings.model_name} version {version}")
    console = grant_console_query(settings, client, client.serving_endpoints.get(name).id)
    return {"action": action, "endpoint": name, "entity_name": settings.model_name, "entity_version": str(version),
            "console_principal": console}


def grant_console_query(settings: Settings, client, endpoint_id: str) -> str | None:
    """Give the console app's service principal ``CAN_QUERY`` on the endpoint; return its application id.

    This is the console's grant on the endpoint. The app resource in the bundle cannot
    carry it: an app resource must name an endpoint that exists at deploy time, and the
    endpoint only exists once a champion does. ``update_permissions`` adds to the
    endpoint's access list, so repeating it is harmless. No app configured (``app_name``
    empty): nothing to grant.
    """
    from databricks.sdk.service.serving import ServingEndpointAccessControlRequest, ServingEndpointPermissionLevel

    app_name = str(settings.variables.get(APP_VARIABLE) or "").strip()
    if not app_name:
        return None
    principal = client.apps.get(app_name).service_principal_client_id
    client.serving_endpoints.update_permissions(
        serving_endpoint_id=endpoint_id,
        access_control_list=[ServingEndpointAccessControlRequest(
            service_principal_name=principal, permission_level=ServingEndpointPermissionLevel.CAN_QUERY)])
    print(f"console app {app_name} (service principal {principal}) may query the serving endpoint")
    return principal
