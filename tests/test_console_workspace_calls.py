"""Which workspace calls each console action makes on Databricks, and that the app's principal may make them.

The console runs as the app's service principal. Its actions must stay within what that
principal is granted: read and append to its tables through the SQL warehouse, and start
jobs. Everything that needs the model's owner (version tags, the model card, the champion
alias, the serving endpoint) runs in the model_governance job.

The boundary is faked as low as it can be here:

- HTTP: a local server stands in for the workspace; the real databricks-sdk (``WorkspaceClient``
  from $DATABRICKS_HOST / $DATABRICKS_TOKEN, as the app builds it) and MLflow's real REST
  stores (tracking URI ``databricks``, registry ``databricks-uc``, which send to the same host)
  build the requests. The server records method and path; any MLflow request would show here
  as ``/api/2.0/mlflow/...`` (none may).
- SQL: the databricks-sql-connector connection (Thrift over HTTP, which cannot be served
  here) is replaced by a recorder of the statements the catalog sends and their parameters.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[1]

from app import actions, data
from app.reproduction import start_reproduction
from healthcare_mlops.bundle import principals
from healthcare_mlops.governance import audit
from healthcare_mlops.identity import APPROVER, OPERATOR, Identity
from healthcare_mlops.monitoring.contract import ALERT_COLUMNS
from json_http import JsonHandler

OWNER = Identity("owner@example.com", APPROVER)
OPS = Identity("ops@example.com", OPERATOR)
ALERT_ID = "6f1c2a8e-0d4b-4c3e-9a57-1b2c3d4e5f60"
SCHEMA = "healthcare_dev.insurance_ml"

# The jobs the fixture deploys, by the id the app's environment names them with.
JOB_KEYS = {917: "model_governance", 918: "model_monitoring", 919: "model_reproduction"}
# What the app's principal must never need (the model owner's rights): a console action that
# sends one of these would fail half-way on a workspace, as approving did.
OWNER_ONLY = re.compile(r"/api/2\.0/mlflow/|/api/2\.0/serving-endpoints|/api/2\.\d/permissions")


class Workspace(JsonHandler):
    """The workspace's REST API: ``jobs/run-now`` answers a run id; anything else is recorded and refused."""

    calls: list = []

    def _record(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        Workspace.calls.append((self.command, self.path.split("?")[0], body))
        return body

    def do_POST(self):   # noqa: N802 (the http.server name)
        self._record()
        if self.path.split("?")[0] == "/api/2.2/jobs/run-now":
            self.send_json({"run_id": 4242, "number_in_job": 4242})
        else:
            self.send_json({"error_code": "PERMISSION_DENIED", "message": "the app may not do this"}, 403)

    def do_GET(self):   # noqa: N802
        self._record()
        if self.path.startswith("/api/2.0/preview/scim/v2/Users"):      # the directory, for the job's check
            self.send_json(Workspace.directory(self.path))
            return
        self.send_json({"error_code": "PERMISSION_DENIED", "message": "the app may not do this"}, 403)

    @staticmethod
    def directory(path: str) -> dict:
        from urllib.parse import parse_qs, urlparse

        query = parse_qs(urlparse(path).query)
        user = re.search(r'userName eq "([^"]*)"', query.get("filter", [""])[0]).group(1)
        group = "healthcare-mlops-approvers" if user == OWNER.user else "healthcare-mlops-operators"
        found = [{"id": "7", "userName": user, "groups": [{"display": group, "value": "1"}]}]
        first = query.get("startIndex", ["1"])[0] == "1"
        return {"Resources": found if first else [], "totalResults": 1, "startIndex": 1,
                "itemsPerPage": 1 if first else 0}

    do_PATCH = do_PUT = do_DELETE = do_GET   # noqa: N815


class Warehouse:
    """The SQL warehouse behind databricks-sql-connector: records each statement; holds the two tables."""

    def __init__(self):
        self.statements: list[tuple[str, dict]] = []
        checks = [{"name": "r2", "value": 0.86, "threshold": ">= 0.7", "verdict": "pass", "hard": True}]
        validated = audit.audit_event(f"{SCHEMA}.dev_jane_doe_insurance_model", "3", audit.VALIDATED, "job:dev",
                                      "system", "manual", checks, hard_checks_passed=True)
        self.audit = [validated]
        self.alert = {column: None for column in ALERT_COLUMNS} | {"alert_id": ALERT_ID, "type": "drift"}

    def connect(self):
        return Connection(self)

    def answer(self, sql: str, params: dict):
        self.statements.append((sql, dict(params)))
        if "information_schema.tables" in sql:
            return [("table_name",)], [(params["table"],)]
        if sql.startswith("INSERT INTO") and "model_governance_log" in sql:
            self.audit.append(params)
            return [], []
        if sql.startswith("UPDATE") and "ml_model_alerts" in sql:
            self.alert.update({key[len("set_"):]: value for key, value in params.items() if key.startswith("set_")})
            return [("num_affected_rows",)], [(1,)]
        if "FROM " + SCHEMA + ".model_governance_log" in sql:
            rows = [r for r in self.audit if all(r.get(c) == params[p] for c, p in
                                                 re.findall(r"(\w+) = :(w\d+)", sql))]
            return None, pa.Table.from_pylist(rows, schema=audit.AUDIT_SCHEMA)
        if "FROM " + SCHEMA + ".ml_model_alerts" in sql:
            return None, pa.table({c: pa.array([self.alert[c]], type=pa.string() if c != "acknowledged_at"
                                                else pa.timestamp("us", tz="UTC")) for c in ALERT_COLUMNS})
        raise AssertionError(f"unexpected statement: {sql}")


class Connection:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def cursor(self):
        return Cursor(self.warehouse)

    def close(self):
        pass


class Cursor(Connection):
    description = None

    def execute(self, sql, params):
        self.description, self._result = self.warehouse.answer(sql, params)

    def fetchall(self):
        return self._result

    def fetchall_arrow(self):
        return self._result


@pytest.fixture
def workspace(monkeypatch):
    """The console as Databricks Apps runs it for a developer's dev target, against the recorders."""
    from healthcare_mlops.runtime import databricks_sql, unity_catalog

    server = ThreadingHTTPServer(("127.0.0.1", 0), Workspace)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Workspace.calls = []
    warehouse = Warehouse()
    monkeypatch.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-app-principal")
    monkeypatch.setenv("DATABRICKS_APP_NAME", "hc-dev-jane-doe")
    monkeypatch.setenv("HEALTHCARE_MLOPS_MODEL_NAME", "dev_jane_doe_insurance_model")
    monkeypatch.setenv("DATABRICKS_WAREHOUSE_ID", "wh1")
    for job, job_id in (("MODEL_GOVERNANCE", "917"), ("MODEL_MONITORING", "918"), ("MODEL_REPRODUCTION", "919")):
        monkeypatch.setenv(f"HEALTHCARE_MLOPS_JOB_ID_{job}", job_id)
    monkeypatch.delenv("HEALTHCARE_MLOPS_TARGET", raising=False)
    monkeypatch.setattr(databricks_sql.DatabricksSqlEngine, "connect", lambda self: warehouse.connect())
    # Databricks Apps install no pyspark: the catalog has no Spark session and uses the warehouse.
    monkeypatch.setattr(unity_catalog.UnityCatalog, "spark", property(lambda self: None))
    for cache in (data._target, data._engine_cached, data.workspace_client):
        cache.clear()
    data.clear_caches()
    yield warehouse
    for cache in (data._target, data._engine_cached, data.workspace_client):
        cache.clear()
    data.clear_caches()
    server.shutdown()


def calls_of(warehouse: Warehouse) -> list[tuple[str, str]]:
    """Every call in order: (method, path) for HTTP, ("SQL", "<VERB> <table>") for the warehouse."""
    http = [(method, path) for method, path, _ in Workspace.calls]
    sql = []
    for statement, _ in warehouse.statements:
        verb = statement.split()[0].upper()
        table = re.search(r"(?:FROM|INTO|UPDATE)\s+([\w.]+)", statement).group(1)
        sql.append(("SQL", f"{verb} {'information_schema.tables' if 'information_schema' in table else table}"))
    return http + sql


def api_calls() -> list[tuple[str, str, dict]]:
    """The REST calls (the SDK's unauthenticated host-metadata lookup left out)."""
    return [call for call in Workspace.calls if call[1].startswith("/api/")]


def rights_needed(warehouse: Warehouse) -> set:
    """The rights the recorded calls need, named as ``bundle.principals`` names them; a call this
    does not know needs a right no principal is given (``unknown``), so it is never covered."""
    needed = set()
    for method, path, body in Workspace.calls:
        if path == "/.well-known/databricks-config":        # the SDK's unauthenticated host metadata
            continue
        if (method, path) == ("POST", "/api/2.2/jobs/run-now"):
            needed.add(principals.Right("job", JOB_KEYS[body["job_id"]], "CAN_MANAGE_RUN"))
        else:
            needed.add(principals.Right("unknown", f"{method} {path}", "?"))
    for kind, statement in calls_of(warehouse):
        if kind != "SQL":
            continue
        verb, table = statement.split()
        needed.add(principals.WAREHOUSE.right)
        if table == "information_schema.tables":
            needed |= {call.right for call in principals.USE}
        else:
            needed.add(principals.Right("table", table.split(".")[-1], "SELECT" if verb == "SELECT" else "MODIFY"))
    return needed


def beyond_the_app(warehouse: Warehouse, action: str) -> set:
    """The rights the recorded calls need that ``bundle.principals`` does not give the app for the
    console path ``action`` (empty: the action works as the app's service principal)."""
    [path] = [p for p in principals.CONSOLE_PATHS if p.name.startswith(f"console: {action}")]
    assert path.principal == principals.APP
    return rights_needed(warehouse) - {call.right for call in path.calls}


def test_approve_reads_and_appends_the_audit_log_and_starts_model_governance(workspace):
    run = actions.approve(OWNER, 3, "fairness table reviewed")
    assert (run.job_key, run.run_id, run.where) == ("model_governance", "4242", "databricks")
    [(method, path, body)] = api_calls()
    assert (method, path) == ("POST", "/api/2.2/jobs/run-now")
    assert body == {"job_id": 917, "job_parameters": {"model_version": "3"}}
    calls = calls_of(workspace)
    assert set(calls) == {("GET", "/.well-known/databricks-config"), ("POST", "/api/2.2/jobs/run-now"),
                          ("SQL", "SELECT information_schema.tables"),
                          ("SQL", f"SELECT {SCHEMA}.model_governance_log"),
                          ("SQL", f"INSERT {SCHEMA}.model_governance_log")}
    assert beyond_the_app(workspace, "approve") == set()
    decision, started = workspace.audit[-2:]
    assert (decision["action"], decision["actor"], decision["role"], decision["version"]) == \
        (audit.APPROVED, OWNER.user, APPROVER, "3")
    assert (started["action"], started["comment"]) == (audit.RAN_JOB,
                                                       'model_governance run 4242 with {"model_version": "3"}')


def test_reject_makes_the_same_calls_and_a_refused_decision_makes_none(workspace):
    from healthcare_mlops.errors import UserError

    for refused in (lambda: actions.approve(OPS, 3, "looks fine"), lambda: actions.reject(OWNER, 3, " ")):
        with pytest.raises(UserError):
            refused()
    assert calls_of(workspace) == []                                   # refused before any call
    actions.reject(OWNER, 3, "duplicate registration")
    assert beyond_the_app(workspace, "reject") == set()
    assert [body for _, _, body in api_calls()] == [{"job_id": 917, "job_parameters": {"model_version": "3"}}]
    assert workspace.audit[-2]["action"] == audit.REJECTED


def test_acknowledge_updates_the_alert_and_appends_the_audit_log(workspace):
    acknowledged = actions.acknowledge(OPS, ALERT_ID, "looking into it")
    assert acknowledged["acknowledged_by"] == OPS.user
    calls = calls_of(workspace)
    assert api_calls() == []
    assert set(calls) == {("SQL", "SELECT information_schema.tables"), ("SQL", f"SELECT {SCHEMA}.ml_model_alerts"),
                          ("SQL", f"UPDATE {SCHEMA}.ml_model_alerts"),
                          ("SQL", f"INSERT {SCHEMA}.model_governance_log")}
    assert beyond_the_app(workspace, "acknowledge") == set()


@pytest.mark.parametrize("start, job_id, params, action", [
    (lambda: actions.run_job_now(OPS, "model_monitoring", {"window_start": "2026-01-02"}), 918,
     {"window_start": "2026-01-02"}, "run now"),
    (lambda: start_reproduction(OPS, 2), 919, {"model_version": "2"}, "reproduce"),
])
def test_run_now_and_reproduce_start_a_job_and_append_the_audit_log(workspace, start, job_id, params, action):
    start()
    assert api_calls() == [("POST", "/api/2.2/jobs/run-now",
                                                           {"job_id": job_id, "job_parameters": params})]
    assert set(calls_of(workspace)) - {("GET", "/.well-known/databricks-config")} == {
        ("POST", "/api/2.2/jobs/run-now"), ("SQL", f"INSERT {SCHEMA}.model_governance_log")}
    assert beyond_the_app(workspace, action) == set()


def test_the_check_refuses_what_only_the_model_owner_may_do(workspace):
    """The check can fail: what the old approval did as the app (tag a version, log the card) is refused."""
    from mlflow.exceptions import MlflowException

    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow

    client = configure_mlflow(data.console_settings())
    with pytest.raises(MlflowException):
        client.set_model_version_tag(f"{SCHEMA}.dev_jane_doe_insurance_model", "3", "approval", "{}")
    beyond = beyond_the_app(workspace, "approve")
    assert beyond and all(right.kind == "unknown" and OWNER_ONLY.search(right.securable) for right in beyond), beyond


def test_the_job_confirms_a_recorded_decision_against_the_directory(workspace):
    """model_governance (on Databricks) counts a decision only when its actor's groups now give a role
    that may take it; an actor that is not a plain e-mail address is never looked up."""
    from healthcare_mlops import composition

    may = composition.role_check(data.console_settings(), data.workspace_client)
    assert may(OWNER.user, "approve") and may(OWNER.user, "reject")
    assert not may(OPS.user, "approve")                  # recorded as approver, an operator in the directory
    looked_up = len(api_calls())
    for hostile in ('x@example.com" or userName pr "', "owner@example.com\nX", "", "job:dev"):
        assert not may(hostile, "approve")
    assert len(api_calls()) == looked_up
    assert {(method, path) for method, path, _ in api_calls()} == {("GET", "/api/2.0/preview/scim/v2/Users")}
    from healthcare_mlops.settings import resolve_settings

    assert composition.role_check(resolve_settings("local", Path("unused")), None) is None
