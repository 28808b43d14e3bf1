"""The console's Databricks edges, with the workspace faked (unit tests: no workspace here).

On Databricks Apps the console finds its target from $DATABRICKS_APP_NAME, sends the same
parameterised SQL text to the SQL warehouse (``databricks-sql-connector``), takes the user
from ``X-Forwarded-Email`` and the role from the bundle's group variables, and starts jobs
with databricks-sdk ``jobs.run_now`` using the job ids that app.yaml maps from the app's
resources. The fakes below stand in for the connector and the SDK only.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[1]

from app import actions, auth, data
from healthcare_mlops.errors import UserError
from healthcare_mlops.identity import APPROVER, OPERATOR, VIEWER, Identity


class FakeCursor:
    def __init__(self, log: list, tables: list[str]):
        self.log, self.tables_present = log, tables

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, params):
        self.log.append((sql, dict(params)))

    def fetchall_arrow(self):
        return pa.table({"members": [3], "review": [1], "critical_risk_members": [0], "mean_predicted": [1.0],
                         "model_version": ["4"], "model_versions": [1], "scored_at": [None]})

    def tables(self, catalog_name=None, schema_name=None):
        self.log.append(("TABLES", {"catalog": catalog_name, "schema": schema_name}))

    def fetchall(self):
        return [("cat", "sch", name, "TABLE") for name in self.tables_present]


class FakeConnection:
    def __init__(self, log, tables):
        self.log, self.tables = log, tables

    def cursor(self):
        return FakeCursor(self.log, self.tables)

    def close(self):
        pass


@pytest.fixture
def workspace(monkeypatch):
    """The console as Databricks Apps starts it for the dev target, with a faked warehouse."""
    from healthcare_mlops.runtime import databricks_sql

    log: list = []
    tables = ["ml_patient_predictions", "ml_model_alerts"]
    monkeypatch.setenv("DATABRICKS_APP_NAME", "hc-dev-jane-doe")          # the dev app is per developer
    monkeypatch.setenv("HEALTHCARE_MLOPS_MODEL_NAME", "dev_jane_doe_insurance_model")
    monkeypatch.delenv("HEALTHCARE_MLOPS_TARGET", raising=False)
    monkeypatch.setattr(databricks_sql.DatabricksSqlEngine, "connect", lambda self: FakeConnection(log, tables))
    data.clear_caches()
    data._engine_cached.clear()
    data._target.clear()
    yield log
    data.clear_caches()
    data._engine_cached.clear()
    data._target.clear()


def test_the_app_name_selects_the_bundle_target_and_its_catalog(workspace):
    assert data.console_target() == "dev"
    settings = data.console_settings()
    assert (settings.catalog, settings.schema) == ("healthcare_dev", "insurance_ml")


def test_queries_go_to_the_warehouse_as_the_same_parameterised_text(workspace):
    day = dt.date(2026, 1, 2)
    frame = data.query("batch_summary", scoring_date=day)
    assert int(frame["members"].iloc[0]) == 3
    sql, params = workspace[-1]
    assert sql == data.QUERIES["batch_summary"].sql(data.console_settings())
    assert "healthcare_dev.insurance_ml.ml_patient_predictions" in sql and ":scoring_date" in sql
    assert params == {"scoring_date": day}
    assert ("TABLES", {"catalog": "healthcare_dev", "schema": "insurance_ml"}) in workspace
    # a table the warehouse does not have: an empty result, no query sent
    sent = len(workspace)
    assert data.query("composite_drift").empty
    assert len(workspace) == sent


def test_a_missing_app_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DATABRICKS_APP_NAME", "someone-elses-app")
    monkeypatch.delenv("HEALTHCARE_MLOPS_TARGET", raising=False)
    data._target.clear()
    with pytest.raises(UserError, match="not the console of any bundle target"):
        data.console_target()


@pytest.mark.parametrize("email, groups, role", [
    ("owner@example.com", ["healthcare-mlops-approvers"], APPROVER),
    ("ops@example.com", ["healthcare-mlops-operators", "users"], OPERATOR),
    ("someone@example.com", ["users"], VIEWER),
])
def test_the_forwarded_user_gets_the_role_of_their_groups(workspace, monkeypatch, email, groups, role):
    monkeypatch.setattr(data, "request_header", lambda name: email if name == auth.EMAIL_HEADER else None)
    monkeypatch.setattr(auth, "_groups", lambda *args: tuple(groups))
    identity = auth.current_identity()
    assert (identity.user, identity.role) == (email, role)


def test_without_a_forwarded_user_the_console_is_read_only(workspace):
    identity = auth.current_identity()
    assert identity.role == VIEWER and not auth.can(identity, "acknowledge")


def test_run_now_uses_the_job_id_that_app_yaml_maps(workspace, monkeypatch):
    calls = []

    class Jobs:
        def run_now(self, job_id, job_parameters=None):
            calls.append((job_id, job_parameters))
            return type("Wait", (), {"run_id": 777})()

    from healthcare_mlops.governance import audit

    audited = []     # the audit row goes to the SQL warehouse, which cannot exist here
    monkeypatch.setattr(audit.AuditLog, "record", lambda log, event: audited.append(event))
    monkeypatch.setattr(data, "workspace_client", lambda: type("Client", (), {"jobs": Jobs()})())
    monkeypatch.setenv("HEALTHCARE_MLOPS_JOB_ID_MODEL_MONITORING", "4242")
    started = actions.run_job_now(Identity("ops@example.com", OPERATOR), "model_monitoring",
                                  {"window_start": "2026-01-02"})
    assert calls == [(4242, {"window_start": "2026-01-02"})] and started.run_id == "777"
    [event] = audited
    assert (event["action"], event["actor"], event["role"], event["version"]) == ("ran job", "ops@example.com",
                                                                                   OPERATOR, "")
    assert event["comment"] == 'model_monitoring run 777 with {"window_start": "2026-01-02"}'
    with pytest.raises(UserError, match="no deployed job id for 'batch_inference'"):
        actions.run_job_now(Identity("ops@example.com", OPERATOR), "batch_inference")
    with pytest.raises(UserError, match="run_job needs the operator role"):
        actions.run_job_now(Identity("viewer@example.com", VIEWER), "model_monitoring")


def test_app_yaml_maps_a_job_id_for_every_bundle_job():
    import yaml

    from healthcare_mlops.bundle.definition import load_bundle

    env = {e["name"] for e in yaml.safe_load((REPO / "app.yaml").read_text())["env"]}
    from healthcare_mlops.bundle.launchers import job_id_env

    assert {job_id_env(key) for key in load_bundle().jobs()} <= env
    assert "DATABRICKS_WAREHOUSE_ID" in env


def test_databricks_run_states_read_as_the_runners():
    """The Jobs page counts and colours by the runner's names on both runtimes."""
    from databricks.sdk.service.jobs import RunLifeCycleState, RunResultState, RunState

    from healthcare_mlops.runtime.workspace_runs import databricks_status

    def status(**state):
        return databricks_status(RunState(**state))

    assert status(life_cycle_state=RunLifeCycleState.TERMINATED, result_state=RunResultState.SUCCESS) == "SUCCEEDED"
    assert status(life_cycle_state=RunLifeCycleState.TERMINATED, result_state=RunResultState.FAILED) == "FAILED"
    assert status(result_state=RunResultState.TIMEDOUT) == "TIMED_OUT"
    assert status(life_cycle_state=RunLifeCycleState.RUNNING) == "RUNNING"
    assert databricks_status(None) == ""


def test_the_score_page_turns_workspace_errors_into_messages():
    from databricks.sdk.errors import BadRequest, NotFound
    from databricks.sdk.service.serving import QueryEndpointResponse

    class Endpoints:
        def __init__(self, outcome):
            self.outcome, self.calls = outcome, []

        def query(self, name, dataframe_records):
            self.calls.append((name, dataframe_records))
            if isinstance(self.outcome, Exception):
                raise self.outcome
            return self.outcome

    class Client:
        def __init__(self, outcome):
            self.serving_endpoints = Endpoints(outcome)

    record = {"age": 45, "bmi": 31.0, "children": 2, "smoker": False, "region": "southeast"}
    answer = {"predicted_annual_charges": 9000.0, "risk_score": 55.0, "risk_category": "medium",
              "interval_lower": 5000.0, "interval_upper": 14000.0}
    from healthcare_mlops.runtime.serving_endpoint_scorer import ServingEndpointScorer

    def score(client, name="insurance-risk"):
        return ServingEndpointScorer(lambda: client, name).score(record)

    ok = Client(QueryEndpointResponse(predictions=[answer], served_model_name="insurance_model-4"))
    assert score(ok) == {**answer, "model_version": "insurance_model-4"}
    assert score(Client(QueryEndpointResponse(predictions=[answer])))["model_version"] == "not said by the endpoint"
    assert ok.serving_endpoints.calls == [("insurance-risk", [record])]
    with pytest.raises(UserError, match="does not exist yet"):
        score(Client(NotFound("no such endpoint")))
    with pytest.raises(UserError, match="refused the request: invalid input in record 0: age"):
        score(Client(BadRequest("invalid input in record 0: age: 130 outside 18-100")))
    with pytest.raises(UserError, match="no serving endpoint"):
        score(Client(None), "")


def test_the_cli_against_a_workspace_acts_as_the_signed_in_user(monkeypatch):
    """Not $HEALTHCARE_MLOPS_USER / _ROLE: those configure a laptop, they cannot raise a role in prod."""
    from databricks.sdk.service.iam import ComplexValue, User

    from healthcare_mlops.composition import cli_identity
    from healthcare_mlops.settings import resolve_settings

    class Me:
        def __init__(self, user):
            self.user = user

        def me(self):
            return self.user

    class Client:
        def __init__(self, user):
            self.current_user = Me(user)

    monkeypatch.setenv("HEALTHCARE_MLOPS_USER", "someone@example.com")
    monkeypatch.setenv("HEALTHCARE_MLOPS_ROLE", APPROVER)
    prod = resolve_settings("prod")
    owner = User(user_name="owner@example.com", groups=[ComplexValue(display="healthcare-mlops-approvers")])
    analyst = User(user_name="analyst@example.com", groups=[ComplexValue(display="analysts")])
    assert cli_identity(prod, lambda: Client(owner)) == Identity("owner@example.com", APPROVER)
    assert cli_identity(prod, lambda: Client(analyst)) == Identity("analyst@example.com", VIEWER)
    assert cli_identity(resolve_settings("local")) == Identity("someone@example.com", APPROVER)
