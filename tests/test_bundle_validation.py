"""Offline bundle validation: the real bundle passes; broken copies fail naming file and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.emulator.validation import BundleInvalid, check_bundle

from bundle_editing import one_matching, problems, replace_text

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "bundles" / "runner"


def _copy_real_bundle(destination: Path) -> Path:
    """databricks.yml, resources/, app.yaml and the jobs/*.py entry points of the checkout."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "databricks.yml", destination / "databricks.yml")
    shutil.copy(REPO / "app.yaml", destination / "app.yaml")
    shutil.copytree(REPO / "resources", destination / "resources")
    shutil.copytree(REPO / "jobs", destination / "jobs")
    return destination


@pytest.fixture
def real_copy(tmp_path) -> Path:
    return _copy_real_bundle(tmp_path / "bundle")


def _edit_yaml(path: Path, edit) -> None:
    document = yaml.safe_load(path.read_text())
    edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


# -- the real bundle ------------------------------------------------------------------------

def test_real_bundle_is_valid_for_every_target():
    """Strict: needs every jobs/*.py entry point the bundle names."""
    check_bundle(load_bundle(REPO))


def test_copy_of_real_bundle_is_valid(real_copy):
    assert problems(real_copy) == []


def test_fixture_bundle_is_valid():
    check_bundle(load_bundle(FIXTURE))


# -- broken copies: each fails naming the file and the key -------------------------------------

def test_misspelled_task_key_is_reported_with_file_and_path(real_copy):
    replace_text(real_copy / "resources" / "jobs.yml", "          max_retries: 2\n", "          max_retrys: 2\n")
    message = one_matching(problems(real_copy), "max_retrys")
    assert message.startswith("resources/jobs.yml: resources.jobs.batch_inference.tasks[0].max_retrys: ")
    assert "did you mean 'max_retries'" in message


def test_misspelled_depends_on_is_reported(real_copy):
    replace_text(real_copy / "resources" / "jobs.yml", "          depends_on:\n            - task_key: model_training",
             "          dependson:\n            - task_key: model_training")
    message = one_matching(problems(real_copy), "dependson")
    assert message.startswith("resources/jobs.yml: resources.jobs.ml_training_pipeline.tasks[2].dependson: ")


def test_misspelled_app_field_is_reported(real_copy):
    replace_text(real_copy / "resources" / "console.yml", "      source_code_path: ../", "      source_code_pth: ../")
    message = one_matching(problems(real_copy), "source_code_pth")
    assert message.startswith("resources/console.yml: resources.apps.console.source_code_pth: ")


def test_bad_enum_value_is_reported(real_copy):
    replace_text(real_copy / "resources" / "console.yml", "permission: CAN_USE", "permission: CAN_USEE")
    message = one_matching(problems(real_copy), "CAN_USEE")
    assert message.startswith("resources/console.yml: resources.apps.console.resources[0].sql_warehouse.permission: ")


def test_misspelled_top_level_key_is_reported(real_copy):
    replace_text(real_copy / "databricks.yml", "\nvariables:\n", "\nvariabels:\n")
    messages = problems(real_copy)
    message = one_matching(messages, "unknown top-level key 'variabels'")
    assert message.startswith("databricks.yml: variabels: ")
    # and every ${var.*} is now undeclared
    one_matching(messages, "resources/jobs.yml: resources.jobs.feature_engineering.tasks[0]",
                  "${var.catalog} is not a declared variable")


def test_missing_python_file_is_reported(real_copy):
    (real_copy / "jobs" / "batch_inference.py").unlink()
    messages = problems(real_copy)
    message = one_matching(messages, "resources.jobs.batch_inference.tasks[0].spark_python_task.python_file")
    assert message.startswith("resources/jobs.yml: ")
    assert "../jobs/batch_inference.py: file not found" in message
    # the pipeline's validation task uses the same file
    one_matching(messages, "resources.jobs.ml_training_pipeline.tasks[3].spark_python_task.python_file")


def test_dangling_job_reference_is_reported(real_copy):
    replace_text(real_copy / "resources" / "console.yml", "${resources.jobs.model_training.id}",
             "${resources.jobs.model_trainig.id}")
    message = one_matching(problems(real_copy), "model_trainig")
    assert message.startswith("resources/console.yml: resources.apps.console.resources[3].job.id: ")
    assert "no jobs resource 'model_trainig' is declared" in message


def test_dangling_resource_field_is_reported(real_copy):
    replace_text(real_copy / "resources" / "jobs.yml", "${resources.experiments.insurance_risk.name}",
             "${resources.experiments.insurance_risk.nmae}")
    message = one_matching(problems(real_copy), "nmae")
    assert message.startswith("resources/jobs.yml: "
                              "resources.jobs.model_training.tasks[0].spark_python_task.parameters[9]: ")


def test_undeclared_variable_is_reported(real_copy):
    replace_text(real_copy / "resources" / "jobs.yml", "${var.r2_min}", "${var.r2_minimum}")
    message = one_matching(problems(real_copy), "r2_minimum")
    assert message.startswith("resources/jobs.yml: "
                              "resources.jobs.model_governance.tasks[0].spark_python_task.parameters[")
    assert "${var.r2_minimum} is not a declared variable" in message


def test_unknown_depends_on_is_reported(real_copy):
    replace_text(real_copy / "resources" / "jobs.yml", "            - task_key: model_governance",
             "            - task_key: nope")
    message = one_matching(problems(real_copy), "'nope'")
    assert message == ("resources/jobs.yml: resources.jobs.ml_training_pipeline.tasks[3].depends_on: "
                       "task 'nope' is not a task of job 'ml_training_pipeline'")


def test_cycle_is_reported(real_copy):
    def make_cycle(document):
        tasks = document["resources"]["jobs"]["ml_training_pipeline"]["tasks"]
        tasks[0]["depends_on"] = [{"task_key": "monitoring_setup"}]
    _edit_yaml(real_copy / "resources" / "jobs.yml", make_cycle)
    message = one_matching(problems(real_copy), "cycle")
    assert message.startswith("resources/jobs.yml: resources.jobs.ml_training_pipeline.tasks: ")
    assert ("feature_engineering -> model_training -> model_governance -> batch_inference_validation "
            "-> monitoring_setup -> feature_engineering") in message


def test_bad_cron_is_reported(real_copy):
    replace_text(real_copy / "resources" / "jobs.yml", '"0 0 2 * * ?"', '"0 0 25 * * ?"')
    message = one_matching(problems(real_copy), "quartz_cron_expression")
    assert message.startswith("resources/jobs.yml: resources.jobs.batch_inference.schedule.quartz_cron_expression: ")
    assert "field 3 (hours): '25' is out of range 0-23" in message


def test_five_field_unix_cron_is_reported(real_copy):
    replace_text(real_copy / "resources" / "jobs.yml", '"0 0 6 * * ?"', '"0 6 * * *"')
    message = one_matching(problems(real_copy), "model_monitoring.schedule.quartz_cron_expression")
    assert "has 5 fields" in message


def test_unknown_time_zone_is_reported(real_copy):
    replace_text(real_copy / "resources" / "jobs.yml", "timezone_id: UTC", "timezone_id: Mars/Olympus")
    one_matching(problems(real_copy), "resources/jobs.yml: resources.jobs.batch_inference.schedule.timezone_id",
                  "'Mars/Olympus' is not a known time zone")


def test_undeclared_job_parameter_reference_is_reported(real_copy):
    replace_text(real_copy / "resources" / "jobs.yml", '"{{job.parameters.scoring_date}}"',
             '"{{job.parameters.scoring_day}}"')
    message = one_matching(problems(real_copy), "scoring_day")
    assert message.startswith("resources/jobs.yml: "
                              "resources.jobs.batch_inference.tasks[0].spark_python_task.parameters[9]: ")
    assert "'scoring_day' is not a parameter of job 'batch_inference'" in message


def test_app_yaml_value_from_must_name_an_app_resource(real_copy):
    replace_text(real_copy / "app.yaml", "valueFrom: sql-warehouse", "valueFrom: warehouse")
    message = one_matching(problems(real_copy), "'warehouse'")
    assert message.startswith("app.yaml: env[1].valueFrom: 'warehouse' is not a resource of app 'console'")


def test_app_yaml_renamed_resource_breaks_the_match(real_copy):
    replace_text(real_copy / "resources" / "console.yml", "- name: mlflow-experiment", "- name: experiment")
    one_matching(problems(real_copy), "app.yaml: env[2].valueFrom: 'mlflow-experiment' is not a resource")


def test_app_yaml_command_must_be_an_argv_list(real_copy):
    replace_text(real_copy / "app.yaml", 'command: ["python", "-m", "app.serve", "run", "app/main.py"]',
             "command: python -m app.serve run app/main.py")
    one_matching(problems(real_copy), "app.yaml: command: command must be a non-empty list of strings")


def test_task_without_required_parameters_is_reported(real_copy):
    def drop_schema(document):
        params = document["resources"]["jobs"]["feature_engineering"]["tasks"][0]["spark_python_task"]["parameters"]
        index = params.index("--schema")
        del params[index:index + 2]
    _edit_yaml(real_copy / "resources" / "jobs.yml", drop_schema)
    one_matching(problems(real_copy), "resources/jobs.yml: resources.jobs.feature_engineering.tasks[0]"
                                        ".spark_python_task.parameters: ", "missing: --schema")


def test_unquoted_number_parameter_is_reported(real_copy):
    def add_number(document):
        task = document["resources"]["jobs"]["feature_engineering"]["tasks"][0]
        task["spark_python_task"]["parameters"] += ["--n", 5]
    _edit_yaml(real_copy / "resources" / "jobs.yml", add_number)
    one_matching(problems(real_copy), "resources.jobs.feature_engineering.tasks[0].spark_python_task.parameters[11]",
                  "must be a string")


def test_target_override_problem_names_the_target(real_copy):
    replace_text(real_copy / "databricks.yml", "      member_source: csv\n",
             "      member_source: csv\n    resources:\n      jobs:\n        batch_inference:\n"
             "          max_concurent_runs: 2\n")
    message = one_matching(problems(real_copy), "max_concurent_runs")
    assert message.startswith("resources/jobs.yml: resources.jobs.batch_inference.max_concurent_runs: ")
    assert message.endswith("(target prod)")


def test_target_setting_an_undeclared_variable_is_reported(real_copy):
    replace_text(real_copy / "databricks.yml", "      catalog: healthcare_staging", "      catalgo: healthcare_staging")
    one_matching(problems(real_copy), "databricks.yml: targets.staging.variables.catalgo: ",
                  "not a declared variable")


def test_duplicate_resource_key_is_refused(real_copy):
    (real_copy / "resources" / "extra.yml").write_text(
        "resources:\n  jobs:\n    batch_inference:\n      name: again\n")
    with pytest.raises(Exception) as excinfo:
        load_bundle(real_copy)
    text = str(excinfo.value)
    assert "resources.jobs.batch_inference is already defined in" in text
    assert "resources/jobs.yml" in text and "resources/extra.yml" in text


def test_check_bundle_lists_every_problem(real_copy):
    replace_text(real_copy / "resources" / "jobs.yml", '"0 0 2 * * ?"', '"0 0 2 * * *"')
    (real_copy / "jobs" / "model_training.py").unlink()
    with pytest.raises(BundleInvalid) as excinfo:
        check_bundle(load_bundle(real_copy))
    text = str(excinfo.value)
    assert "exactly one of day-of-month (field 4) and day-of-week (field 6) must be '?'" in text
    assert "../jobs/model_training.py: file not found" in text
    assert len(excinfo.value.problems) == 3   # model_training twice (its job and the pipeline) + the cron
