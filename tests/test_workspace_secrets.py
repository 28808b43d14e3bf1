"""The member-id hash's key: read from a Databricks secret scope at run time, never a job parameter.

The workspace is a local HTTP server; the real databricks-sdk (``WorkspaceClient`` and its
``dbutils.secrets``, which off a cluster is the REST call) builds the requests."""

from __future__ import annotations

import base64
import hashlib
import dataclasses
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.bundle.interpolation import resolve_target
from healthcare_mlops.composition import (LOCAL_MEMBER_KEY_SECRET, MEMBER_KEY_SECRET_ENV, MEMBER_KEY_SECRET_NAME,
                                          build_runtime)
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import LOCAL_TARGET, resolve_settings
from json_http import JsonHandler

REPO = Path(__file__).resolve().parents[1]
SECRETS = {("healthcare-mlops", MEMBER_KEY_SECRET_NAME): "a per-workspace key", ("empty", MEMBER_KEY_SECRET_NAME): ""}


class SecretsApi(JsonHandler):
    """``GET /api/2.0/secrets/get``: a stored value base64-encoded, else the workspace's 404."""

    requests: list = []

    def do_GET(self):
        url = urlparse(self.path)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        SecretsApi.requests.append((url.path, query))
        value = SECRETS.get((query.get("scope") or "", query.get("key") or ""))
        if url.path != "/api/2.0/secrets/get" or value is None:
            self.send_json({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Secret does not exist"}, 404)
            return
        self.send_json({"key": query["key"], "value": base64.b64encode(value.encode()).decode()})


@pytest.fixture
def workspace(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), SecretsApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("DATABRICKS_TOKEN", "test-token")
    SecretsApi.requests.clear()
    yield SecretsApi.requests
    server.shutdown()


def _runtime(target: str, tmp_path, scope: str | None = None):
    overrides = {"member_key_secret_scope": scope} if scope is not None else None
    return build_runtime(resolve_settings(target=target, home=tmp_path, overrides=overrides,
                                       resolve_model_name=False))


def test_on_a_workspace_the_key_is_the_scope_s_secret_read_through_the_sdk(workspace, tmp_path):
    assert _runtime("dev", tmp_path).member_key_secret() == "a per-workspace key"
    api_calls = [call for call in workspace if call[0].startswith("/api/")]    # not the SDK's host metadata
    assert api_calls == [("/api/2.0/secrets/get", {"scope": "healthcare-mlops", "key": MEMBER_KEY_SECRET_NAME})]


def test_on_a_workspace_the_load_hands_spark_the_secret_s_reference(workspace, tmp_path):
    """Spark reads the key by its reference (test_arrow_member_load: never a literal of the plan); the value is
    still read first, so a missing secret stops the load with the commands that create it."""
    from healthcare_mlops.tasks.load_members import _member_keys

    keys = _member_keys(_runtime("dev", tmp_path), "member_id", member_ids=True)
    assert keys.secret_reference == ("healthcare-mlops", MEMBER_KEY_SECRET_NAME)
    assert keys.secret == "a per-workspace key"
    with pytest.raises(UserError, match="put-secret no-such-scope member-key"):
        _member_keys(_runtime("dev", tmp_path, "no-such-scope"), "member_id", member_ids=True)
    assert _member_keys(_runtime(LOCAL_TARGET, tmp_path), "member_id", member_ids=True).secret_reference is None


@pytest.mark.parametrize("scope, message", [
    ("no-such-scope", "databricks secrets put-secret no-such-scope member-key"),
    ("", "member_key_secret_scope is empty"),
    ("empty", "the secret 'member-key' in the secret scope 'empty' is empty"),
])
def test_a_missing_secret_stops_the_load_with_the_commands_that_create_it(workspace, tmp_path, scope, message):
    with pytest.raises(UserError, match=message):
        _runtime("dev", tmp_path, scope).member_key_secret()


def test_locally_the_key_is_the_environment_s_or_the_laptop_default(tmp_path, monkeypatch):
    monkeypatch.delenv(MEMBER_KEY_SECRET_ENV, raising=False)
    assert _runtime(LOCAL_TARGET, tmp_path).member_key_secret() == LOCAL_MEMBER_KEY_SECRET
    monkeypatch.setenv(MEMBER_KEY_SECRET_ENV, "my laptop's key")
    assert _runtime(LOCAL_TARGET, tmp_path).member_key_secret() == "my laptop's key"


def test_no_job_parameter_carries_a_secret_s_value():
    """Job parameters are shown to every viewer of a job: only the scope's name may be one."""
    bundle = load_bundle(REPO)
    for target in [LOCAL_TARGET, *bundle.target_names()]:
        for job in resolve_target(bundle, target).jobs().values():
            for task in job["tasks"]:
                argv = [str(a) for a in task.get("spark_python_task", {}).get("parameters", [])]
                names = [a[2:] for a in argv if a.startswith("--")]
                assert [n for n in names if "secret" in n and not n.endswith("_scope")] == []
    load = resolve_target(bundle, "prod").jobs()["load_members"]["tasks"][0]["spark_python_task"]["parameters"]
    assert load[load.index("--member_key_secret_scope") + 1] == "healthcare-mlops"


def test_a_file_without_member_ids_never_asks_for_the_secret(tmp_path):
    from healthcare_mlops.tasks.load_members import _member_keys

    def unreachable():
        raise AssertionError("the workspace was asked for the member-key secret")

    runtime = dataclasses.replace(_runtime("dev", tmp_path), client_factory=unreachable)
    assert _member_keys(runtime, "member_id", member_ids=False).secret == ""
    with pytest.raises(AssertionError, match="was asked"):
        _member_keys(runtime, "member_id", member_ids=True)


def test_the_laptop_load_binds_the_key_and_never_writes_it_into_its_sql():
    """DuckDB quotes a failing statement's text in its error: the id hash's key is a bound variable, and the
    keys are the ones Spark's ``member_key`` gives (test_arrow_member_load compares the whole tables)."""
    import duckdb

    from healthcare_mlops.runtime.arrow_member_load import _key, _salted
    from healthcare_mlops.spark.patient_load import KEY_HEX, MEMBER_KEY_PREFIX

    secret = "my laptop's key"
    connection = duckdb.connect()
    _salted(connection, secret)
    sql = f"SELECT {_key(member_ids=True)} AS key FROM (VALUES ('M0000001'), ('M0000002')) AS ids(member_id)"
    keys = [row[0] for row in connection.execute(sql).fetchall()]
    assert keys == [MEMBER_KEY_PREFIX + hashlib.sha256(f"{len(secret)}:{secret}|{i}".encode()).hexdigest()[:KEY_HEX]
                    for i in ("M0000001", "M0000002")]
    assert secret not in sql
    with pytest.raises(duckdb.Error) as failure:
        connection.execute(sql.replace("FROM (VALUES", "FROM (VALUES ('x', 1),"))
    assert secret not in str(failure.value)
