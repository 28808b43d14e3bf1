"""The real bundle's jobs: declared once, the pipeline's DAG, schedules, parameters, thresholds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from healthcare_mlops.emulator.dag import run_order
from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.bundle.interpolation import resolve_target
from healthcare_mlops.emulator.quartz import quartz_errors
from healthcare_mlops.emulator.runner import describe_jobs

REPO = Path(__file__).resolve().parents[1]
JOBS = ("feature_engineering", "model_training", "model_governance", "model_reproduction", "batch_inference",
        "model_monitoring", "load_members", "ml_training_pipeline")

# docs/definitions.md: the single place for these values is the bundle's variables
THRESHOLDS = {
    "r2_min": 0.70, "risk_score_mae_max": 15.0, "high_risk_capture_min": 0.60, "fairness_mae_ratio_max": 1.25,
    "calibration_ratio_min": 0.9, "calibration_ratio_max": 1.1, "fairness_min_group_size": 30,
    "four_fifths_min": 0.8, "champion_mae_tolerance": 0.05, "psi_moderate": 0.1, "psi_significant": 0.25,
    "composite_drift_alert": 0.3, "prediction_psi_alert": 0.25, "group_share_shift_alert": 0.10,
    "low_volume_min_predictions": 50, "performance_risk_score_mae_alert": 15.0, "min_predicted_charges": 1000,
    "review_interval_width_ratio": 2.0, "fairness_bootstrap_samples": 400, "fairness_ci_level": 0.9,
}
GOVERNANCE = ("r2_min", "risk_score_mae_max", "high_risk_capture_min", "fairness_mae_ratio_max",
              "calibration_ratio_min", "calibration_ratio_max", "fairness_min_group_size", "four_fifths_min",
              "champion_mae_tolerance", "fairness_bootstrap_samples", "fairness_ci_level")
MONITORING = ("psi_moderate", "psi_significant", "composite_drift_alert", "prediction_psi_alert",
              "group_share_shift_alert", "low_volume_min_predictions", "performance_risk_score_mae_alert")
INFERENCE = ("min_predicted_charges", "review_interval_width_ratio")


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(REPO)


def _params(job: dict, task_key: str) -> dict:
    task = next(t for t in job["tasks"] if t["task_key"] == task_key)
    argv = task["spark_python_task"]["parameters"]
    return {argv[i][2:]: argv[i + 1] for i in range(0, len(argv) - 1, 2) if str(argv[i]).startswith("--")}


def test_all_six_jobs_are_declared_once(bundle):
    assert set(bundle.jobs()) == set(JOBS)
    assert {bundle.source_of(f"resources.jobs.{job}") for job in JOBS} == {"resources/jobs.yml"}


def test_training_pipeline_runs_in_order(bundle):
    job = bundle.jobs()["ml_training_pipeline"]
    assert run_order("ml_training_pipeline", job["tasks"]) == [
        "feature_engineering", "model_training", "model_governance", "batch_inference_validation",
        "monitoring_setup"]
    local = resolve_target(bundle, "local").jobs()["ml_training_pipeline"]
    assert _params(local, "batch_inference_validation")["mode"] == "validation"
    assert _params(local, "monitoring_setup")["mode"] == "setup"
    files = {t["task_key"]: t["spark_python_task"]["python_file"] for t in job["tasks"]}
    assert files == {"feature_engineering": "../jobs/feature_engineering.py",
                     "model_training": "../jobs/model_training.py",
                     "model_governance": "../jobs/model_governance.py",
                     "batch_inference_validation": "../jobs/batch_inference.py",
                     "monitoring_setup": "../jobs/model_monitoring.py"}


def test_single_task_jobs_use_their_own_entry_point(bundle):
    for job_key in JOBS[:-1]:
        tasks = bundle.jobs()[job_key]["tasks"]
        assert [t["task_key"] for t in tasks] == [job_key]
        assert tasks[0]["spark_python_task"]["python_file"] == f"../jobs/{job_key}.py"


@pytest.mark.parametrize("job_key, cron", [("batch_inference", "0 0 2 * * ?"), ("model_monitoring", "0 0 6 * * ?")])
def test_daily_schedules(bundle, job_key, cron):
    for target in bundle.target_names():
        schedule = resolve_target(bundle, target).jobs()[job_key]["schedule"]
        assert schedule["quartz_cron_expression"] == cron
        assert schedule["timezone_id"] == "UTC"
        assert quartz_errors(cron) == []
        expected = "UNPAUSED" if target == "prod" else "PAUSED"
        assert schedule["pause_status"] == expected, target
    others = [j for j in JOBS if j not in ("batch_inference", "model_monitoring")]
    assert all("schedule" not in bundle.jobs()[j] for j in others)


def test_job_parameters(bundle):
    declared = {key: {p["name"]: p["default"] for p in job.get("parameters", [])}
                for key, job in bundle.jobs().items()}
    assert declared == {
        "feature_engineering": {"as_of": ""},
        "model_training": {"as_of": ""},
        "model_governance": {"model_version": ""},
        "model_reproduction": {"model_version": ""},
        "batch_inference": {"scoring_date": "", "mode": "production"},
        "model_monitoring": {"window_start": "", "window_end": ""},
        "ml_training_pipeline": {"as_of": "", "scoring_date": ""},
        "load_members": {"source": "${var.member_source}",
                         "path": "/Volumes/${var.catalog}/${var.schema}/landing/insurance.csv",
                         "patients": "20000", "seed": "42", "scenario": "baseline", "as_of": "",
                         "replace": "false", "member_id_column": "${var.member_id_column}"},
    }


def test_thresholds_are_bundle_variables_with_design_defaults(bundle):
    defaults = bundle.variable_defaults()
    for name, value in THRESHOLDS.items():
        assert defaults[name] == pytest.approx(value), name


@pytest.mark.parametrize("target", ["local", "dev", "staging", "prod"])
def test_each_job_receives_the_thresholds_it_needs(bundle, target):
    jobs = resolve_target(bundle, target).jobs()
    for job_key, task_key, names in [
        ("model_governance", "model_governance", GOVERNANCE),
        ("model_reproduction", "model_reproduction", GOVERNANCE),
        ("ml_training_pipeline", "model_governance", GOVERNANCE),
        ("batch_inference", "batch_inference", INFERENCE),
        ("ml_training_pipeline", "batch_inference_validation", INFERENCE),
        ("model_monitoring", "model_monitoring", MONITORING),
        ("ml_training_pipeline", "monitoring_setup", MONITORING),
    ]:
        params = _params(jobs[job_key], task_key)
        for name in names:
            assert float(params[name]) == pytest.approx(THRESHOLDS[name]), (job_key, task_key, name)


@pytest.mark.parametrize("target", ["dev", "staging", "prod"])
def test_promotion_knows_its_endpoint_and_the_console_to_grant(bundle, target):
    resolved = resolve_target(bundle, target)
    for job_key in ("model_governance", "ml_training_pipeline"):
        params = _params(resolved.jobs()[job_key], "model_governance")
        assert params["serving_endpoint_name"] == resolved.variables["serving_endpoint_name"]
        # the app's name as deployed (apps keep it in development mode); a reference to the app would be a cycle
        assert params["app_name"] == resolved.resources("apps")["console"]["name"]


def test_every_task_gets_target_catalog_schema_from_the_bundle(bundle):
    for target in ["local", *bundle.target_names()]:
        resolved = resolve_target(bundle, target)
        for job_key, job in resolved.jobs().items():
            for task in job["tasks"]:
                params = _params(job, task["task_key"])
                assert params["target"] == target
                assert params["catalog"] == resolved.variables["catalog"]
                assert params["schema"] == resolved.variables["schema"]


def test_every_threshold_and_setting_variable_is_used(bundle):
    text = "\n".join(path.read_text() for path in (REPO / "resources").glob("*.yml"))
    text += (REPO / "databricks.yml").read_text().split("\ntargets:")[1]
    unused = [name for name in bundle.variables() if f"${{var.{name}}}" not in text]
    assert unused == []


def test_tables_lineage_reads_are_created_with_the_retention_variable(bundle):
    """load_members and feature_engineering create the tables a lineage records; both set the retention."""
    jobs = resolve_target(bundle, "prod").jobs()
    for job_key, task_key in (("load_members", "load_members"), ("feature_engineering", "feature_engineering"),
                              ("ml_training_pipeline", "feature_engineering")):
        assert int(_params(jobs[job_key], task_key)["table_retention_days"]) == 1095, (job_key, task_key)


def test_retries_only_where_idempotent(bundle):
    retries = {(job_key, t["task_key"]): t.get("max_retries", 0)
               for job_key, job in bundle.jobs().items() for t in job["tasks"]}
    for (job_key, task_key), count in retries.items():
        if task_key in ("model_training", "model_governance", "model_reproduction"):
            assert count == 0, (job_key, task_key)
    assert retries[("batch_inference", "batch_inference")] > 0
    assert retries[("model_monitoring", "model_monitoring")] > 0
    assert retries[("feature_engineering", "feature_engineering")] > 0


def test_jobs_have_timeouts_notifications_and_the_wheel(bundle):
    for job_key, job in bundle.jobs().items():
        assert job["timeout_seconds"] > 0
        assert job["email_notifications"]["on_failure"] == "${var.notification_emails}"
        for task in job["tasks"]:
            assert task["timeout_seconds"] > 0
            environment = next(e for e in job["environments"] if e["environment_key"] == task["environment_key"])
            assert "../dist/*.whl" in environment["spec"]["dependencies"]
    assert bundle.document["artifacts"]["healthcare_mlops_wheel"]["type"] == "whl"


def test_the_pipeline_passes_its_own_id_at_run_time_not_a_self_reference(bundle):
    params = _params(resolve_target(bundle, "prod").jobs()["ml_training_pipeline"], "monitoring_setup")
    assert params["retrain_job_id"] == "{{job.id}}"


def test_monitoring_can_trigger_the_retrain_job(bundle):
    deploy = _params(resolve_target(bundle, "prod").jobs()["model_monitoring"], "model_monitoring")
    assert deploy["retrain_job_id"] == "${resources.jobs.ml_training_pipeline.id}"
    local = _params(resolve_target(bundle, "local").jobs()["model_monitoring"], "model_monitoring")
    assert local["retrain_job_id"] == "ml_training_pipeline"


def test_registered_model_and_experiment(bundle):
    resolved = resolve_target(bundle, "prod")
    model = resolved.resources("registered_models")["insurance_model"]
    assert (model["catalog_name"], model["schema_name"], model["name"]) == ("healthcare_prod", "insurance_ml",
                                                                             "insurance_model")
    grants = {g["principal"]: g["privileges"] for g in model["grants"]}
    assert "MANAGE" in grants["healthcare-mlops-approvers"]
    assert grants["healthcare-mlops-operators"] == ["EXECUTE"]
    assert "insurance_risk" in resolved.resources("experiments")


def test_console_app_resources(bundle):
    app = resolve_target(bundle, "prod").resources("apps")["console"]
    assert app["name"] == "hc-mlops-console"
    assert app["source_code_path"] == "../"
    kinds = {r["name"]: next(k for k in r if k not in ("name", "description")) for r in app["resources"]}
    assert kinds["sql-warehouse"] == "sql_warehouse"
    # The endpoint exists only once a champion does; the promotion grants the app CAN_QUERY.
    assert "serving_endpoint" not in kinds.values()
    permissions = {r["name"]: r[kinds[r["name"]]]["permission"] for r in app["resources"]}
    assert permissions["sql-warehouse"] == "CAN_USE"
    jobs = {r["job"]["id"] for r in app["resources"] if "job" in r}
    assert jobs == {f"${{resources.jobs.{job}.id}}" for job in JOBS}
    assert all(permissions[n] == "CAN_MANAGE_RUN" for n in permissions if n.startswith("job-"))


def test_app_yaml_value_from_names_match_the_app_resources(bundle):
    config = yaml.safe_load((REPO / "app.yaml").read_text())
    assert config["command"] == ["python", "-m", "app.serve", "run", "app/main.py"]
    names = {r["name"] for r in bundle.apps()["console"]["resources"]}
    value_from = {e["valueFrom"] for e in config["env"] if "valueFrom" in e}
    assert value_from == names


def test_jobs_list_describes_the_pipeline(bundle):
    described = {job["job_key"]: job for job in describe_jobs(bundle, "local")}
    pipeline = described["ml_training_pipeline"]
    assert [(t["task_key"], t["depends_on"]) for t in pipeline["tasks"]] == [
        ("feature_engineering", []), ("model_training", ["feature_engineering"]),
        ("model_governance", ["model_training"]), ("batch_inference_validation", ["model_governance"]),
        ("monitoring_setup", ["batch_inference_validation"])]
    assert described["batch_inference"]["schedule"]["quartz_cron_expression"] == "0 0 2 * * ?"
    assert pipeline["tasks"][0]["entry_point"] == "jobs/feature_engineering.py"


def test_dev_target_pauses_and_prod_unpauses_through_variables(bundle):
    assert bundle.variable_defaults()["schedule_pause_status"] == "PAUSED"
    assert bundle.target_variables("prod")["schedule_pause_status"] == "UNPAUSED"


def test_ci_workflow_uses_oidc_and_no_secrets():
    path = REPO / ".github" / "workflows" / "ci-cd.yml"
    text = path.read_text()
    workflow = yaml.safe_load(text)
    triggers = workflow[True]          # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    assert triggers["push"]["tags"] == ["v*"]
    assert "secrets." not in text and "DATABRICKS_TOKEN" not in text
    jobs = workflow["jobs"]
    for name in ("validate", "deploy-staging", "deploy-prod"):
        job = jobs[name]
        assert job["permissions"]["id-token"] == "write"
        assert job["env"]["DATABRICKS_AUTH_TYPE"] == "github-oidc"
        assert job["env"]["DATABRICKS_HOST"] == "${{ vars.DATABRICKS_HOST }}"
        assert job["env"]["DATABRICKS_CLIENT_ID"] == "${{ vars.DATABRICKS_CLIENT_ID }}"
        assert any("databricks/setup-cli" in step.get("uses", "") for step in job["steps"])
    assert jobs["validate"]["strategy"]["matrix"]["target"] == ["dev", "staging", "prod"]
    assert "refs/heads/main" in jobs["deploy-staging"]["if"]
    assert "refs/tags/v" in jobs["deploy-prod"]["if"]
    runs = lambda job: " ".join(step.get("run", "") for step in jobs[job]["steps"])  # noqa: E731
    assert "databricks bundle deploy -t staging" in runs("deploy-staging")
    assert "databricks bundle deploy -t prod" in runs("deploy-prod")
    # the test job is a clean Python 3.11 machine running .ci/run (which installs Java 17 itself)
    assert runs("test").strip().endswith("bash .ci/run")
    assert jobs["test"]["container"].startswith("python:3.11")


def test_deployment_guide_covers_the_essentials():
    text = (REPO / "docs" / "deployment.md").read_text()
    for fragment in ("databricks bundle validate", "databricks bundle deploy", "databricks bundle run",
                     "Federation polic", "service principal", "SQL warehouse", "Rollback",
                     "governance rollback --to-version", "staging", "prod"):
        assert fragment in text, fragment
    assert re.search(r"CREATE (CATALOG|SCHEMA)", text)
