"""The GitHub Actions workflow runs what a clean machine runs, with every action pinned."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
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


def _schema_step(workdir: Path, python: str) -> subprocess.CompletedProcess:
    """.ci/run's bundle-schema step, run as bash runs it, from ``workdir`` with ``python`` as .venv/bin/python."""
    script = (REPO / ".ci" / "run").read_text()
    step = script[script.index("schema=../shared"):script.index("\nfi\n", script.index("schema=../shared")) + 4]
    return subprocess.run(["bash", "-euo", "pipefail", "-c", step.replace(".venv/bin/python", python)],
                          cwd=workdir, capture_output=True, text=True, timeout=60)


@pytest.mark.slow     # runs .ci/run's schema step in bash
def test_ci_run_says_when_the_schema_check_is_skipped(tmp_path):
    """Without ../shared (a GitHub runner) the step passes and says it skipped the check, and why."""
    (tmp_path / "clone").mkdir()
    result = _schema_step(tmp_path / "clone", "false")
    assert result.returncode == 0
    assert "bundle JSON schema check SKIPPED: ../shared/bundle-schema/jsonschema.json not found" in result.stdout


@pytest.mark.slow
def test_ci_run_runs_the_schema_check_when_the_schema_is_there(tmp_path):
    (tmp_path / "shared" / "bundle-schema").mkdir(parents=True)
    (tmp_path / "shared" / "bundle-schema" / "jsonschema.json").write_text("{}")
    (tmp_path / "clone").mkdir()
    result = _schema_step(tmp_path / "clone", "false")     # the check's failure must fail the step
    assert result.returncode != 0 and "SKIPPED" not in result.stdout
