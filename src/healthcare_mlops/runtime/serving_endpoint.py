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
each request (``scoring/http_server.py``, ``local_server_command``); it follows the champion
(a promotion is served within seconds, ``runtime/scoring_server.py``), every answer names the
version that gave it, and every request is logged to ``serving_payload``. On Databricks the
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
from dataclasses import dataclass

from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import Settings, development_endpoint_name
from healthcare_mlops.tables import SERVING_PAYLOAD

# `serve`'s port and the demo's: not MLflow's 5000, which macOS's AirPlay receiver holds.
DEFAULT_SCORING_PORT = 5001
ENDPOINT_VARIABLE = "serving_endpoint_name"
APP_VARIABLE = "app_name"
# The most concurrent requests each workload size serves (Databricks Model Serving's sizes); with a
# minimum provisioned concurrency the size's bound becomes the endpoint's maximum.
WORKLOAD_CONCURRENCY = {"Small": 4, "Medium": 16, "Large": 64}
CONCURRENCY_STEP = 4           # provisioned concurrency comes in multiples of 4
# AI Gateway names the inference table <prefix>_payload; the local server writes the same table.
INFERENCE_TABLE_PREFIX = SERVING_PAYLOAD.removesuffix("_payload")
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
    """(argv, environment, version now champion) of the guarded scoring server that follows the champion."""
    version = version or champion_version(settings)
    argv = [sys.executable, "-m", "healthcare_mlops.runtime.scoring_server", "--home", str(settings.home),
            "--port", str(int(port)), "--host", host]
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri, "MLFLOW_REGISTRY_URI": settings.registry_uri}
    return argv, env, version


def endpoint_name(settings: Settings, resolve: bool = True) -> str | None:
    """The target's endpoint name; a per-user one (dev) as its deploy resolved it (or as written)."""
    name = str(settings.variables.get(ENDPOINT_VARIABLE) or "").strip()
    if resolve and "${" in name:
        name = development_endpoint_name(name)
    return name or None


@dataclass(frozen=True)
class ServingSizing:
    """How big the champion's endpoint is and whether it may stop when idle (bundle variables per target)."""

    workload_size: str
    scale_to_zero: bool
    min_provisioned_concurrency: int

    @classmethod
    def from_variables(cls, variables: dict) -> "ServingSizing":
        """The sizing from the variables ``serving_workload_size``, ``serving_scale_to_zero`` and
        ``serving_min_provisioned_concurrency``.

        A contradiction (scale to zero with a minimum above 0, a minimum that is not a multiple
        of 4 or exceeds the size's bound, an unknown size) is a UserError naming the variable.
        """
        size = str(variables.get("serving_workload_size") or "").strip()
        if size not in WORKLOAD_CONCURRENCY:
            raise UserError(f"serving_workload_size must be one of {', '.join(WORKLOAD_CONCURRENCY)}, not '{size}'")
        to_zero = str(variables.get("serving_scale_to_zero")).strip().lower()
        if to_zero not in ("true", "false"):
            raise UserError(f"serving_scale_to_zero must be true or false, not '{to_zero}'")
        raw = str(variables.get("serving_min_provisioned_concurrency")).strip()
        minimum = int(float(raw)) if raw.replace(".", "", 1).isdigit() and float(raw).is_integer() else -1
        if minimum < 0 or minimum % CONCURRENCY_STEP or minimum > WORKLOAD_CONCURRENCY[size]:
            raise UserError(f"serving_min_provisioned_concurrency must be a multiple of {CONCURRENCY_STEP} from 0 "
                            f"to {WORKLOAD_CONCURRENCY[size]} ({size}), not '{raw}'")
        if to_zero == "true" and minimum:
            raise UserError("serving_scale_to_zero is true but serving_min_provisioned_concurrency is "
                            f"{minimum}: an endpoint that keeps capacity ready cannot scale to zero")
        return cls(size, to_zero == "true", minimum)

    def entity_fields(self) -> dict:
        """The served entity's sizing fields: a workload size, or a concurrency range when a minimum is set."""
        if self.min_provisioned_concurrency:      # the API takes a range or a size, never both
            return {"min_provisioned_concurrency": self.min_provisioned_concurrency,
                    "max_provisioned_concurrency": WORKLOAD_CONCURRENCY[self.workload_size],
                    "scale_to_zero_enabled": False}
        return {"workload_size": self.workload_size, "scale_to_zero_enabled": self.scale_to_zero}


def served_entity(settings: Settings, version) -> object:
    """The endpoint's one served entity: the Unity Catalog model version, sized for the target."""
    from databricks.sdk.service.serving import ServedEntityInput

    sizing = ServingSizing.from_variables(settings.variables)
    return ServedEntityInput(entity_name=settings.model_name, entity_version=str(version), **sizing.entity_fields())


def inference_table(catalog: str, schema: str) -> object:
    """AI Gateway's inference table of the endpoint: every request and answer, in the project's schema."""
    from databricks.sdk.service.serving import AiGatewayInferenceTableConfig

    return AiGatewayInferenceTableConfig(catalog_name=catalog, schema_name=schema,
                                         table_name_prefix=INFERENCE_TABLE_PREFIX, enabled=True)


def logs_to(endpoint, wanted) -> bool:
    """Whether an endpoint (``ServingEndpointDetailed``) already logs to the ``wanted`` inference table."""
    gateway = getattr(endpoint, "ai_gateway", None)
    current = gateway.inference_table_config if gateway else None
    return current is not None and current.as_dict() == wanted.as_dict()


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
    from databricks.sdk.service.serving import AiGatewayConfig, EndpointCoreConfigInput

    name = endpoint_name(settings)
    if name is None:
        print(f"no serving endpoint configured ({ENDPOINT_VARIABLE} is empty): version {version} "
              "is not served in real time")
        return None
    if client is None:
        from databricks.sdk import WorkspaceClient

        client = WorkspaceClient()
    entity = served_entity(settings, version)
    table = inference_table(settings.catalog, settings.schema)
    try:
        existing = client.serving_endpoints.get(name)
    except NotFound:
        client.serving_endpoints.create_and_wait(
            name=name, config=EndpointCoreConfigInput(name=name, served_entities=[entity]),
            ai_gateway=AiGatewayConfig(inference_table_config=table), timeout=ENDPOINT_WAIT)
        action = "created"
    else:
        if served_versions(existing) == {(settings.model_name, str(version))}:
            action = "unchanged"
        else:
            client.serving_endpoints.update_config_and_wait(name=name, served_entities=[entity],
                                                            timeout=ENDPOINT_WAIT)
            action = "updated"
        if not logs_to(existing, table):      # an endpoint created before inference tables were enabled
            client.serving_endpoints.put_ai_gateway(name=name, inference_table_config=table)
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
