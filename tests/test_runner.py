"""The local runner on a small fixture bundle (tiny Python tasks, no Spark)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from healthcare_mlops.emulator.dag import CycleError
from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.emulator.run_history import JOB_RUNS_COLUMNS, read_runs
from healthcare_mlops.emulator.runner import parse_param_overrides, plan_job, run_job
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import LOCAL_OVERRIDES, Settings

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "bundles" / "runner"


@pytest.fixture(scope="module")
def fixture_bundle():
    return load_bundle(FIXTURE)


def _marker(home: Path, task: str) -> dict:
    return json.loads((home / "markers" / f"{task}.json").read_text())


def _history(home: Path, job_key: str | None = None):
    settings = Settings(target="local", catalog=LOCAL_OVERRIDES["catalog"], schema=LOCAL_OVERRIDES["schema"],
                        home=home)
    return read_runs(settings, job_key=job_key)


@pytest.mark.slow
def test_success_runs_every_task_in_dependency_order(fixture_bundle, home):
    result = run_job("chain", bundle=fixture_bundle, home=home, echo=False)
    assert result.succeeded and result.error is None
    assert [t.task_key for t in result.tasks] == ["first", "second", "third"]   # declared third, second, first
    assert all(t.status == "SUCCEEDED" and t.exit_code == 0 for t in result.tasks)
    for task in ("first", "second", "third"):
        marker = _marker(home, task)
        assert marker["cwd"] == str(FIXTURE)
        assert marker["bundle_root"] == str(FIXTURE)
    assert result.task("first").log_path.read_text().count("recorded first") == 1


@pytest.mark.slow
def test_parameters_reach_the_task(fixture_bundle, home):
    result = run_job("chain", {"label": "two words"}, bundle=fixture_bundle, home=home, echo=False)
    first = _marker(home, "first")["params"]
    assert first["target"] == "local"
    assert first["catalog"] == LOCAL_OVERRIDES["catalog"]          # local overrides beat the defaults
    assert first["schema"] == LOCAL_OVERRIDES["schema"]
    assert first["approval_mode"] == LOCAL_OVERRIDES["approval_mode"]
    assert first["greeting"] == "hello"                            # the default, not the dev target's value
    assert first["threshold"] == "0.75"
    assert first["day"] == "2026-01-01"                            # job parameter default
    assert first["label"] == "two words"                           # --param override, one argv item
    assert first["other_job"] == "failing"                         # ${resources.jobs.failing.id} locally
    assert first["task"] == "first"                                # {{task.name}}
    assert _marker(home, "second")["params"]["job_id"] == "chain"   # {{job.id}}
    assert _marker(home, "second")["params"]["start"] == result.start_time.date().isoformat()
    assert _marker(home, "third")["params"]["run"] == str(result.run_id)   # {{job.run_id}}
    today = result.start_time.date().isoformat()
    assert _marker(home, "third")["params"]["run_day"] == today    # a default that is a dynamic reference
    assert result.parameters == {"day": "2026-01-01", "label": "two words", "run_day": today}


@pytest.mark.slow
def test_overridden_job_parameter(fixture_bundle, home):
    run_job("chain", {"day": "2030-12-31"}, bundle=fixture_bundle, home=home, echo=False)
    assert _marker(home, "first")["params"]["day"] == "2030-12-31"


@pytest.mark.slow
def test_failure_stops_dependents_and_reports_the_tasks_error(fixture_bundle, home):
    result = run_job("failing", bundle=fixture_bundle, home=home, echo=False)
    statuses = {t.task_key: t.status for t in result.tasks}
    assert statuses == {"prepare": "SUCCEEDED", "explode": "FAILED", "downstream": "UPSTREAM_FAILED",
                        "further_downstream": "UPSTREAM_FAILED", "cleanup": "SUCCEEDED"}   # run_if ALL_DONE
    assert not (home / "markers" / "downstream.json").exists()
    assert not (home / "markers" / "further_downstream.json").exists()
    assert (home / "markers" / "cleanup.json").exists()
    assert result.status == "FAILED"
    assert result.error.startswith("task 'explode' failed (exit code 1): RuntimeError: the fixture task "
                                   "exploded on purpose")
    assert "Traceback (most recent call last)" in result.error
    assert result.task("explode").exit_code == 1
    with pytest.raises(UserError, match="job 'failing' .* FAILED: task 'explode' failed"):
        result.raise_for_status()


@pytest.mark.slow
def test_timeout(fixture_bundle, home):
    result = run_job("slow", bundle=fixture_bundle, home=home, echo=False)
    assert result.status == "TIMED_OUT"
    assert result.task("sleep").status == "TIMED_OUT"
    assert "timed out after 1 s" in result.error


@pytest.mark.slow
def test_job_runs_rows_are_written(fixture_bundle, home):
    ok = run_job("chain", bundle=fixture_bundle, home=home, echo=False, trigger="test")
    failed = run_job("failing", bundle=fixture_bundle, home=home, echo=False)
    history = _history(home)
    assert tuple(history.columns) == JOB_RUNS_COLUMNS
    assert len(history) == 2 + 3 + 5
    job_rows = history[history["parent_run_id"].isna()]
    assert list(job_rows["job_key"]) == ["failing", "chain"]        # newest first
    assert list(job_rows["status"]) == ["FAILED", "SUCCEEDED"]
    chain_tasks = history[history["parent_run_id"] == ok.run_id]
    assert list(chain_tasks["task_key"]) == ["first", "second", "third"]
    assert set(chain_tasks["trigger"]) == {"test"}
    assert (chain_tasks["duration_seconds"] > 0).all()
    assert json.loads(chain_tasks.iloc[0]["parameters"])[:2] == ["--target", "local"]
    assert json.loads(job_rows.iloc[1]["parameters"]) == {"day": "2026-01-01", "label": "",
                                                          "run_day": ok.start_time.date().isoformat()}
    failing_tasks = history[history["parent_run_id"] == failed.run_id].set_index("task_key")
    assert failing_tasks.loc["downstream", "status"] == "UPSTREAM_FAILED"
    assert "explode" in failing_tasks.loc["downstream", "error"]
    assert "RuntimeError" in failing_tasks.loc["explode", "error"]
    assert "RuntimeError" in job_rows.iloc[0]["error"]
    assert list(_history(home, "chain")["job_key"].unique()) == ["chain"]


def _copy_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    shutil.copytree(FIXTURE, root)
    return root


def test_a_cycle_is_refused_before_anything_runs(tmp_path, home):
    root = _copy_fixture(tmp_path)
    jobs_file = root / "resources" / "jobs.yml"
    document = yaml.safe_load(jobs_file.read_text())
    tasks = document["resources"]["jobs"]["chain"]["tasks"]
    next(t for t in tasks if t["task_key"] == "first")["depends_on"] = [{"task_key": "third"}]
    jobs_file.write_text(yaml.safe_dump(document))
    with pytest.raises(CycleError) as excinfo:
        run_job("chain", bundle=load_bundle(root), home=home, echo=False)
    assert "form a cycle: third -> first -> second -> third" in str(excinfo.value)
    assert not (home / "markers").exists()
    assert _history(home).empty


def test_unknown_dependency_is_refused(tmp_path, home):
    root = _copy_fixture(tmp_path)
    jobs_file = root / "resources" / "jobs.yml"
    jobs_file.write_text(jobs_file.read_text().replace("- task_key: second\n", "- task_key: secnd\n", 1))
    with pytest.raises(UserError, match="depends on 'secnd', which is not a task of job 'chain'"):
        run_job("chain", bundle=load_bundle(root), home=home, echo=False)


def test_missing_python_file_is_refused(tmp_path, home):
    root = _copy_fixture(tmp_path)
    (root / "tasks" / "fail.py").unlink()
    with pytest.raises(UserError, match=r"task 'explode' of job 'failing': python file ../tasks/fail.py not found"):
        run_job("failing", bundle=load_bundle(root), home=home, echo=False)
    assert not (home / "markers").exists()


def test_undeclared_variable_is_refused(tmp_path, home):
    root = _copy_fixture(tmp_path)
    jobs_file = root / "resources" / "jobs.yml"
    jobs_file.write_text(jobs_file.read_text().replace("${var.greeting}", "${var.greting}"))
    with pytest.raises(UserError, match=r"resources/jobs.yml: resources.jobs.chain.tasks\[1\].spark_python_task"
                                        r".parameters\[13\]: \$\{var.greting\} is not a declared variable"):
        run_job("chain", bundle=load_bundle(root), home=home, echo=False)


def test_unknown_job_and_parameter_are_refused(fixture_bundle, home):
    with pytest.raises(UserError, match="no job 'nope' in the bundle"):
        run_job("nope", bundle=fixture_bundle, home=home, echo=False)
    with pytest.raises(UserError,
                       match="'dya' is not a parameter of job 'chain' \\(parameters: day, label, run_day\\)"):
        run_job("chain", {"dya": "x"}, bundle=fixture_bundle, home=home, echo=False)


def test_plan_resolves_without_running(fixture_bundle):
    plan = plan_job("failing", bundle=fixture_bundle)
    assert plan.order == ["prepare", "explode", "downstream", "further_downstream", "cleanup"]
    assert plan.tasks["cleanup"].run_if == "ALL_DONE"
    assert plan.tasks["prepare"].parameters[:2] == ["--target", "local"]


def test_parse_param_overrides():
    assert parse_param_overrides(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(UserError, match="--param must be name=value"):
        parse_param_overrides(["novalue"])


@pytest.mark.slow
def test_echo_prefixes_task_output(fixture_bundle, home, capfd):
    run_job("chain", bundle=fixture_bundle, home=home, echo=True)
    out = capfd.readouterr().out
    assert "[first] recorded first" in out
    assert "job chain run" in out and "SUCCEEDED" in out
