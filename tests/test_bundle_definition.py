"""Loading the bundle, merging a target's overrides, and resolving ${...} references."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthcare_mlops.bundle import definition
from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.bundle.interpolation import (interpolate, is_known_dynamic_reference, resolve_target,
                                                   substitute_dynamic)
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import LOCAL_OVERRIDES, resolve_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(REPO)


def test_every_file_and_resource_has_a_source(bundle):
    assert bundle.files[0] == "databricks.yml"
    assert set(bundle.files[1:]) == {"resources/jobs.yml", "resources/mlflow.yml", "resources/console.yml"}
    assert bundle.source_of("resources.jobs.batch_inference.tasks[0].depends_on") == "resources/jobs.yml"
    assert bundle.source_of("resources.apps.console.resources[2]") == "resources/console.yml"
    assert bundle.source_of("variables.catalog") == "databricks.yml"
    assert bundle.source_of("targets.prod.resources.jobs") == "databricks.yml"


def test_target_variables_override_defaults(bundle):
    assert bundle.target_variables("dev")["catalog"] == "healthcare_dev"
    prod = bundle.target_variables("prod")
    assert prod["catalog"] == "healthcare_prod"
    assert prod["approval_mode"] == "manual"
    assert prod["schedule_pause_status"] == "UNPAUSED"
    assert bundle.target_variables("staging")["approval_mode"] == "manual"
    with pytest.raises(UserError, match="unknown bundle target 'qa'"):
        bundle.target_variables("qa")


def test_target_overrides_merge_job_clusters_by_key(tmp_path):
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: b}\n"
        "resources:\n  jobs:\n    j:\n      job_clusters:\n        - job_cluster_key: c\n"
        "          new_cluster: {spark_version: v, autoscale: {min_workers: 1, max_workers: 2}}\n"
        "targets:\n  prod:\n    resources:\n      jobs:\n        j:\n          job_clusters:\n"
        "            - job_cluster_key: c\n              new_cluster: {autoscale: {max_workers: 8}}\n")
    clusters = load_bundle(tmp_path).target_document("prod")["resources"]["jobs"]["j"]["job_clusters"]
    assert len(clusters) == 1                    # merged by job_cluster_key, not appended
    assert clusters[0]["new_cluster"] == {"spark_version": "v", "autoscale": {"min_workers": 1, "max_workers": 8}}


def test_every_job_runs_on_serverless_and_no_node_type_is_assumed(bundle):
    for target in ("dev", "staging", "prod"):
        document = bundle.target_document(target)
        assert "clusters" not in document["resources"]
        for job in document["resources"]["jobs"].values():
            assert "job_clusters" not in job
            assert all("environment_key" in task for task in job["tasks"])
    assert not {"node_type_id", "spark_version"} & set(bundle.variables())


def test_production_targets_are_deployed_by_the_service_principal_without_run_as(bundle):
    for target in ("staging", "prod"):
        document = bundle.target_document(target)
        assert "run_as" not in document            # apps refuse a run_as other than the deployer
        assert document["workspace"]["root_path"].startswith("/Workspace/Users/${var.service_principal_id}/")
        assert bundle.target(target)["mode"] == "production"
    assert bundle.target("dev")["mode"] == "development"
    assert bundle.default_target() == "dev"


def test_local_target_uses_defaults_and_local_overrides(bundle):
    resolved = resolve_target(bundle, "local")
    assert resolved.problems == []
    for name, value in LOCAL_OVERRIDES.items():
        assert resolved.variables[name] == value
    assert resolved.variables["r2_min"] == 0.70
    params = resolved.jobs()["model_monitoring"]["tasks"][0]["spark_python_task"]["parameters"]
    assert params[:6] == ["--target", "local", "--catalog", LOCAL_OVERRIDES["catalog"],
                          "--schema", LOCAL_OVERRIDES["schema"]]
    # locally a job's id is its key, and other resource fields come from their configuration
    assert params[params.index("--retrain_job_id") + 1] == "ml_training_pipeline"
    assert params[params.index("--model_name") + 1] == "insurance_model"
    assert resolve_settings("local").catalog == LOCAL_OVERRIDES["catalog"]


def test_bundle_targets_keep_resource_references_for_deploy_time(bundle):
    resolved = resolve_target(bundle, "prod")
    assert resolved.problems == []
    params = resolved.jobs()["model_monitoring"]["tasks"][0]["spark_python_task"]["parameters"]
    assert params[:6] == ["--target", "prod", "--catalog", "healthcare_prod", "--schema", "insurance_ml"]
    assert params[params.index("--retrain_job_id") + 1] == "${resources.jobs.ml_training_pipeline.id}"
    assert "{{job.parameters.window_start}}" in params
    # required variables: given at deploy time (--var or BUNDLE_VAR_<name>)
    assert resolved.variables["warehouse_id"] == "<warehouse_id: --var warehouse_id=... or BUNDLE_VAR_warehouse_id>"
    assert "run_as" not in resolved.document


def test_interpolate_whole_and_partial_references():
    values = {"var.n": 3, "var.items": ["a", "b"], "var.flag": True, "bundle.target": "dev"}

    def lookup(reference):
        return values[reference]

    problems: list = []
    result = interpolate({"a": "${var.n}", "b": "x-${var.n}-${bundle.target}", "c": "${var.items}",
                          "d": ["${var.flag}", "on=${var.flag}"]}, lookup, "", problems)
    assert result == {"a": 3, "b": "x-3-dev", "c": ["a", "b"], "d": [True, "on=true"]}
    interpolate({"e": "list: ${var.items}"}, lookup, "", problems)
    assert problems == [("e", "${var.items} is a complex value and cannot be part of a string")]


def test_dynamic_references():
    assert is_known_dynamic_reference("job.parameters.as_of")
    assert is_known_dynamic_reference("job.start_time.iso_date")
    assert is_known_dynamic_reference("tasks.model_training.values.version")
    assert not is_known_dynamic_reference("job.paramters.as_of")
    assert substitute_dynamic("--day {{job.parameters.day}} {{ task.name }}",
                              {"job.parameters.day": "2026-01-01", "task.name": "t"}) == "--day 2026-01-01 t"
    with pytest.raises(UserError, match="job.nope"):
        substitute_dynamic("{{job.nope}}", {"task.name": "t"})


def test_target_for_app_name(bundle):
    from healthcare_mlops.bundle.interpolation import target_for_app_name

    assert target_for_app_name(bundle, "hc-mlops-console") == "prod"
    assert target_for_app_name(bundle, "hc-mlops-console-staging") == "staging"
    assert target_for_app_name(bundle, "hc-dev-jane-doe") == "dev"      # one console per developer
    assert target_for_app_name(bundle, "hc-mlops-console-dev") is None
    assert target_for_app_name(bundle, "someone-else") is None


def test_app_names_fit_databricks_apps_limits(bundle):
    import re

    for target in bundle.target_names():
        name = resolve_target(bundle, target).resources("apps")["console"]["name"]
        assert re.fullmatch(r"[a-z0-9-]{2,30}", name), name


def test_installed_wheel_falls_back_to_the_packaged_bundle(tmp_path, monkeypatch):
    packaged = tmp_path / "site-packages" / "healthcare_mlops" / "_bundle"
    (packaged / "resources").mkdir(parents=True)
    (packaged / "databricks.yml").write_text((REPO / "databricks.yml").read_text())
    for path in (REPO / "resources").glob("*.yml"):
        (packaged / "resources" / path.name).write_text(path.read_text())
    monkeypatch.delenv(definition.BUNDLE_ROOT_ENV, raising=False)
    monkeypatch.setattr(definition, "PACKAGED_BUNDLE_DIR", packaged)
    monkeypatch.setattr(definition, "_checkout_root", lambda: tmp_path / "no-checkout")
    assert definition.default_bundle_root() == packaged
    assert set(load_bundle().jobs()) == set(load_bundle(REPO).jobs())
    # a checkout wins over the packaged copy
    monkeypatch.setattr(definition, "_checkout_root", lambda: REPO)
    assert definition.default_bundle_root() == REPO


def test_bundle_root_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(definition.BUNDLE_ROOT_ENV, str(tmp_path))
    assert definition.default_bundle_root() == tmp_path
    with pytest.raises(UserError, match="file not found"):
        load_bundle()


def test_pyproject_packages_the_bundle():
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    force = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force["databricks.yml"] == "healthcare_mlops/_bundle/databricks.yml"
    assert force["resources"] == "healthcare_mlops/_bundle/resources"
    assert str(definition.PACKAGED_BUNDLE_DIR).endswith("healthcare_mlops/_bundle")


def test_git_commit_reaches_training_for_lineage(bundle, tmp_path):
    import subprocess

    def git_commit_param(resolved):
        params = resolved.jobs()["model_training"]["tasks"][0]["spark_python_task"]["parameters"]
        return params[params.index("--git_commit") + 1]

    assert git_commit_param(resolve_target(bundle, "prod")) == "${bundle.git.commit}"   # the CLI fills it in
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    expected = head.stdout.strip() if head.returncode == 0 else ""
    assert git_commit_param(resolve_target(bundle, "local")) == expected
