"""The Databricks serving endpoint: per-target sizing and the inference table, as databricks-sdk sends them.

No workspace exists here, so the boundary is the SDK's HTTP layer: ``RecordingApi`` stands in
for ``ApiClient`` and answers like the REST API, while the real ``ServingEndpointsAPI`` and
``AppsAPI`` build every request (paths, methods, JSON bodies) and wait on the real ``Wait``.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
from databricks.sdk.errors import NotFound
from databricks.sdk.service.apps import AppsAPI
from databricks.sdk.service.serving import ServingEndpointsAPI

from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.serving_endpoint import ServingSizing, deploy_champion_endpoint, served_entity
from healthcare_mlops.settings import resolve_settings

ENDPOINTS = "/api/2.0/serving-endpoints"
READY = {"config_update": "NOT_UPDATING", "ready": "READY"}


class RecordingApi:
    """An ``ApiClient`` that records each request and keeps endpoints the way the REST API would."""

    _cfg = SimpleNamespace(workspace_id=None)      # the SDK reads it for an optional workspace header

    def __init__(self, endpoints: dict | None = None):
        self.endpoints = copy.deepcopy(endpoints or {})
        self.requests: list[tuple[str, str, dict | None]] = []

    def do(self, method: str, path: str, query=None, headers=None, body=None, **_):
        self.requests.append((method, path, copy.deepcopy(body)))
        if path.startswith("/api/2.0/apps/"):
            name = path.rsplit("/", 1)[1]
            return {"name": name, "service_principal_client_id": f"sp-of-{name}"}
        if path.startswith("/api/2.0/permissions/"):
            return {}
        if method == "POST" and path == ENDPOINTS:
            self.endpoints[body["name"]] = {"name": body["name"], "id": f"id-{body['name']}", "state": READY,
                                            "config": body["config"], "ai_gateway": body.get("ai_gateway")}
            return self.endpoints[body["name"]]
        name, _, action = path.removeprefix(ENDPOINTS + "/").partition("/")
        if name not in self.endpoints:
            raise NotFound(f"serving endpoint {name} does not exist")
        endpoint = self.endpoints[name]
        if action == "config":
            endpoint["config"] = {"served_entities": body["served_entities"]}
        elif action == "ai-gateway":
            endpoint["ai_gateway"] = body
        return endpoint

    def changes(self, since: int = 0) -> list[tuple[str, str, dict | None]]:
        """The requests that change the workspace (every deploy also reads the endpoint)."""
        return [r for r in self.requests[since:] if r[0] != "GET"]


class Workspace:
    """The two SDK services the promotion uses, on a recording HTTP layer."""

    def __init__(self, endpoints=None):
        self.api = RecordingApi(endpoints)
        self.serving_endpoints = ServingEndpointsAPI(self.api)
        self.apps = AppsAPI(self.api)


# The deployed names the model_governance task receives in dev (its --model_name and --app_name).
AS_THE_DEV_JOB_PASSES = {"model_name": "insurance_model", "app_name": "hc-dev-jane-doe",
                         "serving_endpoint_name": "insurance-risk-dev-jane-doe"}
DEV_MODEL = "healthcare_dev.insurance_ml.insurance_model"


@pytest.mark.parametrize("target, sizing", [
    ("dev", {"workload_size": "Small", "scale_to_zero_enabled": True}),
    ("staging", {"workload_size": "Small", "scale_to_zero_enabled": True}),
    ("prod", {"min_provisioned_concurrency": 8, "max_provisioned_concurrency": 16, "scale_to_zero_enabled": False}),
])
def test_each_target_renders_its_own_serving_size(target, sizing):
    settings = resolve_settings(target, overrides={"model_name": "insurance_model"})
    entity = served_entity(settings, 3).as_dict()
    assert entity == {"entity_name": f"{settings.catalog}.insurance_ml.insurance_model", "entity_version": "3",
                      **sizing}


@pytest.mark.parametrize("variables, refused", [
    ({"serving_workload_size": "Huge"}, "serving_workload_size"),
    ({"serving_workload_size": "small"}, "serving_workload_size"),
    ({"serving_scale_to_zero": "yes"}, "serving_scale_to_zero"),
    ({"serving_min_provisioned_concurrency": "6"}, "multiple of 4"),
    ({"serving_min_provisioned_concurrency": "-4"}, "multiple of 4"),
    ({"serving_min_provisioned_concurrency": "32"}, r"to 16 \(Medium\)"),
    ({"serving_min_provisioned_concurrency": "4; DROP"}, "multiple of 4"),
    ({"serving_scale_to_zero": "true"}, "cannot scale to zero"),
])
def test_contradictory_or_hostile_sizing_is_refused_by_name(variables, refused):
    prod = {"serving_workload_size": "Medium", "serving_scale_to_zero": "false",
            "serving_min_provisioned_concurrency": "8"}
    with pytest.raises(UserError, match=refused):
        ServingSizing.from_variables({**prod, **variables})


def test_the_first_promotion_creates_a_logged_endpoint_and_later_ones_update_it():
    settings = resolve_settings("dev", overrides=AS_THE_DEV_JOB_PASSES)
    workspace = Workspace()
    created = deploy_champion_endpoint(settings, 1, client=workspace)
    (create, grant) = workspace.api.changes()
    assert create == ("POST", ENDPOINTS, {
        "name": "insurance-risk-dev-jane-doe",
        "config": {"name": "insurance-risk-dev-jane-doe", "served_entities": [
            {"entity_name": DEV_MODEL, "entity_version": "1", "workload_size": "Small",
             "scale_to_zero_enabled": True}]},
        "ai_gateway": {"inference_table_config": {"catalog_name": "healthcare_dev", "schema_name": "insurance_ml",
                                                  "table_name_prefix": "serving", "enabled": True}}})
    assert grant == ("PATCH", "/api/2.0/permissions/serving-endpoints/id-insurance-risk-dev-jane-doe", {
        "access_control_list": [{"service_principal_name": "sp-of-hc-dev-jane-doe", "permission_level": "CAN_QUERY"}]})
    assert created == {"action": "created", "endpoint": "insurance-risk-dev-jane-doe", "entity_name": DEV_MODEL,
                       "entity_version": "1", "console_principal": "sp-of-hc-dev-jane-doe"}

    since = len(workspace.api.requests)
    assert deploy_champion_endpoint(settings, "2", client=workspace)["action"] == "updated"
    update, _grant = workspace.api.changes(since)
    assert update == ("PUT", f"{ENDPOINTS}/insurance-risk-dev-jane-doe/config", {"served_entities": [
        {"entity_name": DEV_MODEL, "entity_version": "2", "workload_size": "Small", "scale_to_zero_enabled": True}]})

    since = len(workspace.api.requests)
    assert deploy_champion_endpoint(settings, 2, client=workspace)["action"] == "unchanged"   # a retried promotion
    assert [r[1] for r in workspace.api.changes(since)] == [grant[1]]       # the grant is repeated, harmlessly


def test_an_endpoint_without_an_inference_table_gets_one_and_prod_keeps_capacity():
    prod = resolve_settings("prod")
    old = {"name": "insurance-risk", "id": "id-insurance-risk", "state": READY,
           "config": {"served_entities": [{"entity_name": prod.model_name, "entity_version": "6"}]}}
    workspace = Workspace({"insurance-risk": old})
    result = deploy_champion_endpoint(prod, 7, client=workspace)
    update, gateway, _grant = workspace.api.changes()
    assert update[2]["served_entities"][0] == {
        "entity_name": "healthcare_prod.insurance_ml.insurance_model", "entity_version": "7",
        "min_provisioned_concurrency": 8, "max_provisioned_concurrency": 16, "scale_to_zero_enabled": False}
    assert gateway == ("PUT", f"{ENDPOINTS}/insurance-risk/ai-gateway", {"inference_table_config": {
        "catalog_name": "healthcare_prod", "schema_name": "insurance_ml", "table_name_prefix": "serving",
        "enabled": True}})
    assert result["console_principal"] == "sp-of-hc-mlops-console"

    since = len(workspace.api.requests)
    deploy_champion_endpoint(prod, 7, client=workspace)       # logging already on: not asked again
    assert [r[1].rsplit("/", 1)[1] for r in workspace.api.changes(since)] == ["id-insurance-risk"]


def test_no_endpoint_name_no_workspace_call_and_no_console_no_grant():
    unnamed = resolve_settings("dev", overrides={**AS_THE_DEV_JOB_PASSES, "serving_endpoint_name": ""})
    silent = Workspace()
    assert deploy_champion_endpoint(unnamed, 1, client=silent) is None
    assert silent.api.requests == []
    no_console = resolve_settings("dev", overrides={**AS_THE_DEV_JOB_PASSES, "app_name": ""})
    quiet = Workspace()
    assert deploy_champion_endpoint(no_console, 1, client=quiet)["console_principal"] is None
    assert [r[0] for r in quiet.api.changes()] == ["POST"]
