"""The bundle rendered for dev, staging and prod as the CLI deploys it, and what its consumers are given.

``render_target`` applies the target's variables, development mode's renames and every
``${resources...}``, for a named developer. Checked for each target: no resource refers to
itself, every reference resolves, every job's entry point ships (synced, and the task module
it imports is in the wheel), the names the jobs and the console are given are the names
deployed, and the jobs' libraries are pinned within the project's own ranges.
"""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from healthcare_mlops import settings as settings_module
from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.emulator.deploy_rules import plan_cycles
from healthcare_mlops.bundle.deployment import render_target
from healthcare_mlops.bundle.interpolation import REFERENCE, references, resolve_target, target_for_app_name
from healthcare_mlops.runtime.serving_endpoint import ENDPOINT_WAIT, endpoint_name
from healthcare_mlops.settings import GOVERNANCE_JOB_ID_ENV, MODEL_NAME_ENV, resolve_settings

REPO = Path(__file__).resolve().parents[1]
DEVELOPER = "Jane.Doe@example.com"
TARGETS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(REPO)


@pytest.fixture(scope="module", params=TARGETS)
def rendered(request, bundle):
    return render_target(bundle, request.param, DEVELOPER)


def _flag(params: list, name: str):
    flag = f"--{name}"
    return params[params.index(flag) + 1] if flag in params else None


def _tasks(rendered):
    for job_key, job in rendered.resources("jobs").items():
        for task in job["tasks"]:
            yield job_key, task


def test_every_reference_resolves_and_nothing_refers_to_itself(bundle, rendered):
    assert rendered.problems == []
    assert list(references(rendered.document.get("resources") or {})) == []
    assert plan_cycles(resolve_target(bundle, rendered.target, DEVELOPER)) == []


def test_development_mode_renames_as_the_cli_does(rendered):
    jobs = rendered.resources("jobs")
    model = rendered.resources("registered_models")["insurance_model"]["name"]
    app = rendered.resources("apps")["console"]["name"]
    if rendered.target == "dev":
        assert model == "dev_jane_doe_insurance_model"
        assert all(job["name"].startswith("[dev jane_doe] ") for job in jobs.values())
        assert app == "hc-dev-jane-doe"                        # apps get no prefix: the variable makes it per user
        assert rendered.resources("experiments")["insurance_risk"]["name"].startswith(
            "/Users/Jane.Doe@example.com/[dev jane_doe] ")
    else:
        assert model == "insurance_model"
        assert not any(job["name"].startswith("[dev") for job in jobs.values())
    assert len(app) <= 30


def test_the_names_the_jobs_are_given_are_the_names_deployed(rendered):
    deployed = {"model_name": rendered.resources("registered_models")["insurance_model"]["name"],
                "experiment_name": rendered.resources("experiments")["insurance_risk"]["name"],
                "app_name": rendered.resources("apps")["console"]["name"]}
    given = {}
    for _, task in _tasks(rendered):
        params = task["spark_python_task"]["parameters"]
        for name in deployed:
            if _flag(params, name) is not None:
                given.setdefault(name, set()).add(_flag(params, name))
    assert given == {name: {value} for name, value in deployed.items()}
    pipeline = next(t for t in rendered.resources("jobs")["ml_training_pipeline"]["tasks"]
                    if t["task_key"] == "monitoring_setup")
    assert _flag(pipeline["spark_python_task"]["parameters"], "retrain_job_id") == "{{job.id}}"


def test_the_console_and_the_cli_resolve_the_deployed_model_name(bundle, rendered, monkeypatch):
    """The console finds it on the deployed model_governance job; the CLI from the developer's short name."""
    model = rendered.resources("registered_models")["insurance_model"]
    expected = f"{model['catalog_name']}.{model['schema_name']}.{model['name']}"
    monkeypatch.setattr(settings_module, "_workspace_client", _workspace_with_governance_job(rendered, DEVELOPER))
    monkeypatch.setattr(settings_module, "_development_names", {})
    monkeypatch.delenv(MODEL_NAME_ENV, raising=False)
    monkeypatch.delenv(GOVERNANCE_JOB_ID_ENV, raising=False)
    assert resolve_settings(rendered.target).model_name == expected          # the CLI, as the developer
    monkeypatch.setenv(GOVERNANCE_JOB_ID_ENV, "917")
    assert resolve_settings(rendered.target).model_name == expected          # the console, as the app
    assert target_for_app_name(bundle, rendered.resources("apps")["console"]["name"]) == rendered.target


def test_reading_the_model_name_never_calls_the_workspace(bundle, monkeypatch):
    """Issue 25 item 4: dev's deployed name is resolved once where the settings are built; the
    property is a pure read (a workspace factory that fails if called proves it)."""
    rendered = render_target(bundle, "dev", DEVELOPER)
    model = rendered.resources("registered_models")["insurance_model"]
    expected = f"{model['catalog_name']}.{model['schema_name']}.{model['name']}"
    workspace, calls = _workspace_with_governance_job(rendered, DEVELOPER), []
    monkeypatch.setattr(settings_module, "_workspace_client", lambda: calls.append("built") or workspace)
    monkeypatch.setattr(settings_module, "_development_names", {})
    monkeypatch.delenv(MODEL_NAME_ENV, raising=False)
    monkeypatch.delenv(GOVERNANCE_JOB_ID_ENV, raising=False)
    settings = resolve_settings(rendered.target)
    assert calls == ["built"]                                  # at the edge, once

    def refuse():
        raise AssertionError("Settings.model_name called the workspace")

    monkeypatch.setattr(settings_module, "_workspace_client", refuse)
    monkeypatch.setattr(settings_module, "_development_names", {})          # no cache to lean on either
    assert settings.model_name == expected
    assert settings.as_dict()["model_name"] == expected
    from healthcare_mlops.errors import UserError

    unresolved = resolve_settings(rendered.target, resolve_model_name=False)   # offline: no call, and no guess
    with pytest.raises(UserError, match="deployed model name was not resolved"):
        unresolved.model_name


def _workspace_with_governance_job(rendered, user: str):
    """databricks-sdk's WorkspaceClient at the boundary: the deployed model_governance job and the signed-in user."""
    governance_task = rendered.resources("jobs")["model_governance"]["tasks"][0]

    class Workspace:
        class jobs:
            @staticmethod
            def get(job_id):
                from databricks.sdk.service.jobs import Job

                assert job_id == 917       # the id app.yaml maps into the console's environment
                return Job.from_dict({"job_id": job_id, "settings": {"tasks": [
                    {"task_key": "model_governance", "spark_python_task": governance_task["spark_python_task"]}]}})

        class current_user:
            @staticmethod
            def me():
                return type("User", (), {"user_name": user})()

    return Workspace


def test_each_developer_has_their_own_endpoint_and_every_consumer_finds_it(bundle, monkeypatch):
    """dev's endpoint name is per user; the promotion gets it resolved, the console and the CLI find the same."""
    names = {}
    for user in (DEVELOPER, "Max.Roe@example.com"):
        rendered = render_target(bundle, "dev", user)
        params = rendered.resources("jobs")["model_governance"]["tasks"][0]["spark_python_task"]["parameters"]
        names[user] = _flag(params, "serving_endpoint_name")
        monkeypatch.setattr(settings_module, "_workspace_client", _workspace_with_governance_job(rendered, user))
        monkeypatch.delenv(GOVERNANCE_JOB_ID_ENV, raising=False)
        assert endpoint_name(resolve_settings("dev")) == names[user]          # the CLI, as the developer
        monkeypatch.setenv(GOVERNANCE_JOB_ID_ENV, "917")
        assert endpoint_name(resolve_settings("dev")) == names[user]          # the console, as the app
    assert names == {DEVELOPER: "insurance-risk-dev-jane-doe", "Max.Roe@example.com": "insurance-risk-dev-max-roe"}
    for target in ("staging", "prod"):
        assert "${" not in endpoint_name(resolve_settings(target))


def test_every_entry_point_ships_and_imports_a_task_module_of_the_wheel(bundle, rendered):
    excluded = (bundle.document.get("sync") or {}).get("exclude") or []
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    package_dir = REPO / packages["packages"][0]
    for job_key, task in _tasks(rendered):
        python_file = (REPO / "resources" / task["spark_python_task"]["python_file"]).resolve()
        relative = python_file.relative_to(REPO).as_posix()
        assert python_file.is_file(), f"{job_key}: {relative} missing"
        assert not any(fnmatch.fnmatch(relative, pattern) for pattern in excluded), f"{relative} is not synced"
        imported = [node for node in ast.walk(ast.parse(python_file.read_text()))
                    if isinstance(node, ast.ImportFrom) and node.module == "healthcare_mlops.tasks"]
        assert imported, f"{relative} imports no task module"
        for node in imported:
            for alias in node.names:
                assert (package_dir / "tasks" / f"{alias.name}.py").is_file(), f"{relative}: {alias.name}"


def test_jobs_install_pinned_libraries_within_the_projects_ranges(rendered):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    ranges = {Requirement(r).name: Requirement(r).specifier for r in project}
    for job in rendered.resources("jobs").values():
        for environment in job["environments"]:
            spec = environment["spec"]
            assert spec["environment_version"] == "2"                  # Python 3.11: requires-python
            pins = [Requirement(d) for d in spec["dependencies"] if not d.endswith(".whl")]
            assert {p.name for p in pins} >= {"numpy", "pandas", "pyarrow", "mlflow"}
            for pin in pins:
                (version,) = [s.version for s in pin.specifier if s.operator == "=="]
                assert ranges[pin.name].contains(version), f"{pin} is outside pyproject's {ranges[pin.name]}"
            assert spec["dependencies"][-1] == "../dist/*.whl"


def test_the_governance_task_has_room_to_wait_for_the_endpoint(rendered):
    for _, task in _tasks(rendered):
        if task["spark_python_task"]["python_file"].endswith("model_governance.py"):
            assert task["timeout_seconds"] >= ENDPOINT_WAIT.total_seconds() + 15 * 60


def test_required_variables_have_no_value_in_the_bundle(bundle):
    """Workspace facts are not guessed: a deploy without them stops with the CLI's clear error."""
    for name in ("warehouse_id", "service_principal_id"):
        spec = bundle.variables()[name]
        assert "default" not in spec and "lookup" not in spec
    assert not REFERENCE.search(str(bundle.target("dev").get("variables", {}).get("service_principal_id")))


def test_an_explicit_name_prefix_preset_is_applied_as_the_cli_applies_it(tmp_path):
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: b}\n"
        "resources:\n  jobs:\n    j: {name: job}\n"
        "  registered_models:\n    m: {name: model, catalog_name: c, schema_name: s}\n"
        "targets:\n  dev:\n    mode: development\n"
        "  qa:\n    presets: {name_prefix: '[qa ${workspace.current_user.short_name}] '}\n")
    bundle = load_bundle(tmp_path)
    dev, qa = (render_target(bundle, target, DEVELOPER) for target in ("dev", "qa"))
    assert (dev.resources("jobs")["j"]["name"], dev.resources("registered_models")["m"]["name"]) == \
        ("[dev jane_doe] job", "dev_jane_doe_model")
    assert (qa.resources("jobs")["j"]["name"], qa.resources("registered_models")["m"]["name"]) == \
        ("[qa jane_doe] job", "qa_jane_doe_model")


def test_the_console_never_guesses_the_model_name_from_its_own_identity(monkeypatch):
    from databricks.sdk.service.jobs import Job

    from healthcare_mlops.errors import UserError

    class Workspace:
        class jobs:
            @staticmethod
            def get(job_id):
                return Job.from_dict({"job_id": job_id, "settings": {"tasks": [{"task_key": "t"}]}})

    monkeypatch.setattr(settings_module, "_workspace_client", Workspace)
    monkeypatch.setattr(settings_module, "_development_names", {})
    monkeypatch.delenv(MODEL_NAME_ENV, raising=False)
    monkeypatch.setenv(GOVERNANCE_JOB_ID_ENV, "5")
    with pytest.raises(UserError, match="passes no --model_name"):
        resolve_settings("dev").model_name
