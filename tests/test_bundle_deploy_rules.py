"""Deploy-time rules: each broken copy of the real bundle is refused naming the field; the real one passes.

These are the mistakes ``databricks bundle validate`` lets through and a deploy (or the first
run) does not: a job that passes its own ``${resources...id}`` (a cycle of one in the deploy
plan; tests/test_bundle_deploy_plan.py has the graph), ``run_as`` next to an app,
an empty ``run_as`` identity, an empty variable in a production path, and a parameter that
names a model, experiment, app or job other than the one the target deploys.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bundle_editing import one_matching, problems, replace_text

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def copy(tmp_path) -> Path:
    """The real bundle (databricks.yml, resources/, app.yaml, jobs/) in a scratch folder."""
    root = tmp_path / "bundle"
    root.mkdir()
    for name in ("databricks.yml", "app.yaml"):
        shutil.copy(REPO / name, root / name)
    for folder in ("resources", "jobs"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def test_the_real_bundle_passes_every_deploy_rule(copy):
    assert problems(copy) == []


def test_a_job_passing_its_own_resource_id_is_refused(copy):
    replace_text(copy / "resources" / "jobs.yml", '- "{{job.id}}"', "- ${resources.jobs.ml_training_pipeline.id}")
    message = one_matching(problems(copy), "resources.jobs.ml_training_pipeline refers to itself via "
                           "${resources.jobs.ml_training_pipeline.id}")
    assert message.startswith("resources/jobs.yml: resources.jobs.ml_training_pipeline.tasks[4]"
                              ".spark_python_task.parameters[")
    assert "Self-referential block" in message and "{{job.id}}" in message


def test_any_field_of_itself_counts_as_a_self_reference(copy):
    replace_text(copy / "resources" / "jobs.yml", "      description: One as-of date's member load",
                 "      description: ${resources.jobs.feature_engineering.name} - one as-of date's member load")
    one_matching(problems(copy), "resources/jobs.yml: resources.jobs.feature_engineering.description: ",
         "resources.jobs.feature_engineering refers to itself via ${resources.jobs.feature_engineering.name}")


def test_run_as_next_to_an_app_is_refused(copy):
    replace_text(copy / "databricks.yml", "  staging:\n    mode: production\n",
                 "  staging:\n    mode: production\n"
                 "    run_as:\n      service_principal_name: ${var.service_principal_id}\n")
    message = one_matching(problems(copy), "run_as cannot be combined with apps")
    assert message.startswith("databricks.yml: targets.staging.run_as: ")
    assert message.endswith("(target staging)")


def test_an_empty_run_as_identity_on_a_production_target_is_refused(copy):
    replace_text(copy / "databricks.yml", "  prod:\n    mode: production\n",
                 "  prod:\n    mode: production\n"
                 "    run_as:\n      service_principal_name: ${var.approvers_group_sp}\n")
    replace_text(copy / "databricks.yml", "variables:\n", "variables:\n  approvers_group_sp:\n    default: \"\"\n")
    message = one_matching(problems(copy), "run_as must name exactly one identity")
    assert message.startswith("databricks.yml: targets.prod.run_as: ")
    assert "both empty" in message


def test_an_empty_service_principal_in_the_production_root_path_is_refused(copy):
    replace_text(copy / "databricks.yml", "      member_source: csv\n",
                 "      member_source: csv\n      service_principal_id: \"\"\n")
    message = one_matching(problems(copy), "targets.prod.workspace.root_path")
    assert message.startswith("databricks.yml: ")
    assert "var.service_principal_id is empty for target 'prod'" in message


def test_a_consumer_using_the_name_development_mode_renames_is_refused(copy):
    replace_text(copy / "resources" / "jobs.yml", "${resources.registered_models.insurance_model.name}",
                 "${var.model_name}")
    found = problems(copy)
    dev = one_matching(found, "resources.jobs.model_training.tasks[0].spark_python_task.parameters[7]",
                       "--model_name must name the registered_models resource", "(target dev)")
    assert "deployed as 'dev_deployer_insurance_model'" in dev
    # staging and prod deploy it unrenamed, but a variable is still not the deployed resource
    one_matching(found, "resources.jobs.model_training.tasks[0].spark_python_task.parameters[7]", "staging, prod")


def test_a_hard_coded_job_id_is_refused(copy):
    replace_text(copy / "resources" / "jobs.yml", "              - ${resources.jobs.ml_training_pipeline.id}",
                 "              - \"12345\"")
    one_matching(problems(copy),
                 "resources/jobs.yml: resources.jobs.model_monitoring.tasks[0].spark_python_task.parameters[",
         "--retrain_job_id must name the jobs resource this target deploys", "not '12345'")


def test_a_job_that_only_one_target_deploys_cannot_be_passed_in_the_others(copy):
    replace_text(copy / "databricks.yml", "  staging:\n",
                 "    resources:\n      jobs:\n        retrain_dev:\n          name: retrain\n          tasks:\n"
                 "            - task_key: t\n              environment_key: default\n              spark_python_task:\n"
                 "                python_file: ../jobs/load_members.py\n"
                 "                parameters: [--target, x, --catalog, c, --schema, s]\n"
                 "          environments:\n            - environment_key: default\n"
                 "              spec: {environment_version: \"2\"}\n"
                 "\n  staging:\n")
    replace_text(copy / "resources" / "jobs.yml", "              - ${resources.jobs.ml_training_pipeline.id}",
                 "              - ${resources.jobs.retrain_dev.id}")
    message = one_matching(problems(copy), "resources.jobs.model_monitoring.tasks[0].spark_python_task.parameters[",
                   "no jobs resource 'retrain_dev' is declared")
    assert message.endswith("(targets staging, prod, local)")     # dev deploys it


def test_an_endpoint_the_bundle_deploys_must_be_passed_by_reference(copy):
    (copy / "resources" / "serving.yml").write_text(
        "resources:\n  model_serving_endpoints:\n    risk:\n      name: ${var.serving_endpoint_name}\n"
        "      config:\n        served_entities:\n"
        "          - entity_name: ${var.catalog}.${var.schema}.insurance_model\n"
        "            entity_version: \"1\"\n            workload_size: Small\n"
        "            scale_to_zero_enabled: true\n")
    message = one_matching(problems(copy), "--serving_endpoint_name must name the model_serving_endpoints resource")
    assert message.startswith("resources/jobs.yml: "
                              "resources.jobs.model_governance.tasks[0].spark_python_task.parameters[")
    assert "(declared: risk)" in message


def test_a_required_variable_given_empty_at_deploy_time_is_refused(copy, monkeypatch):
    """The CLI takes BUNDLE_VAR_<name> as the value, empty or not; so does the offline check."""
    monkeypatch.setenv("BUNDLE_VAR_service_principal_id", "")
    one_matching(problems(copy), "databricks.yml: targets.staging.workspace.root_path: ",
         "var.service_principal_id is empty for target 'staging'")
    monkeypatch.setenv("BUNDLE_VAR_service_principal_id", "6f1c2b0e-0000-4000-8000-000000000000")
    assert problems(copy) == []
