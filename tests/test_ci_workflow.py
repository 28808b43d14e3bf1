"""The GitHub Actions workflow runs what a clean machine runs, with every action pinned."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "ci-cd.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_the_test_job_runs_the_same_command_as_ci_run():
    steps = _workflow()["jobs"]["test"]["steps"]
    commands = [step["run"].strip() for step in steps if "run" in step]
    assert commands[-1] == "bash .ci/run"
    assert "jobs validate" in (REPO / ".ci" / "run").read_text()


def test_every_action_is_pinned_to_a_commit():
    for job_key, job in _workflow()["jobs"].items():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), (job_key, step["uses"])


def test_staging_loads_members_before_the_pipeline_and_deploys_get_required_variables():
    jobs = _workflow()["jobs"]
    runs = [step["run"] for step in jobs["deploy-staging"]["steps"] if "run" in step]
    load = next(i for i, r in enumerate(runs) if "bundle run -t staging load_members" in r)
    pipeline = next(i for i, r in enumerate(runs) if "bundle run -t staging ml_training_pipeline" in r)
    assert load < pipeline
    for job_key in ("validate", "deploy-staging", "deploy-prod"):
        env = jobs[job_key]["env"]
        assert {"BUNDLE_VAR_service_principal_id", "BUNDLE_VAR_warehouse_id"} <= set(env), job_key
