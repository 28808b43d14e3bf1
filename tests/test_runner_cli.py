"""``healthcare-mlops jobs ...`` and ``demo`` as a user runs them (processes, exit codes, output)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from healthcare_mlops.cli import demo as demo_module
from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.cli.demo import DEMO_STEPS, DemoStep, demo_context, run_demo
from healthcare_mlops.errors import UserError

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "bundles" / "runner"


def cli_process(home: Path, *args: str, bundle_root: Path = FIXTURE) -> subprocess.CompletedProcess:
    """The command as a user runs it: its own process, exit code and stderr."""
    env = {**os.environ, "HEALTHCARE_MLOPS_HOME": str(home), "HEALTHCARE_MLOPS_BUNDLE_ROOT": str(bundle_root)}
    return subprocess.run([sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()", *args],
                          env=env, capture_output=True, text=True, timeout=120)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(home: Path, *args: str, bundle_root: Path = FIXTURE) -> Result:
    """The command in this process (fast); a UserError becomes exit code 1 and ``error: ...`` as run() does."""
    from typer.testing import CliRunner

    from healthcare_mlops.cli.main import app

    env = {"HEALTHCARE_MLOPS_HOME": str(home), "HEALTHCARE_MLOPS_BUNDLE_ROOT": str(bundle_root)}
    result = CliRunner().invoke(app, list(args), env=env)
    if isinstance(result.exception, UserError):
        return Result(1, result.stdout, f"error: {result.exception}\n")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, "")


def test_jobs_list(home):
    result = cli(home, "jobs", "list")
    assert result.returncode == 0, result.stderr
    assert "chain  [no schedule]  resources/jobs.yml" in result.stdout
    assert "second                       after first" in result.stdout
    listed = json.loads(cli(home, "jobs", "list", "--format", "json").stdout)
    chain = next(job for job in listed if job["job_key"] == "chain")
    assert [t["task_key"] for t in chain["tasks"]] == ["first", "second", "third"]
    assert chain["parameters"] == {"day": "2026-01-01", "label": "", "run_day": "{{job.start_time.iso_date}}"}


@pytest.mark.slow
def test_jobs_run_success_and_history(home):
    result = cli(home, "jobs", "run", "chain", "--param", "day=2030-01-01", "-p", "label=cli")
    assert result.returncode == 0, result.stderr
    assert "[first] recorded first" in result.stdout
    marker = json.loads((home / "markers" / "first.json").read_text())
    assert marker["params"]["day"] == "2030-01-01" and marker["params"]["label"] == "cli"
    runs = json.loads(cli(home, "jobs", "runs", "--format", "json").stdout)
    assert [(r["job_key"], r["task_key"], r["status"]) for r in runs] == [
        ("chain", None, "SUCCEEDED"), ("chain", "first", "SUCCEEDED"), ("chain", "second", "SUCCEEDED"),
        ("chain", "third", "SUCCEEDED")]
    table = cli(home, "jobs", "runs", "--job", "chain")
    assert table.returncode == 0 and "SUCCEEDED" in table.stdout


@pytest.mark.slow
def test_jobs_run_failure_exits_non_zero_with_the_tasks_error(home):
    result = cli_process(home, "jobs", "run", "failing", "--quiet")
    assert result.returncode == 1
    assert "error: job 'failing'" in result.stderr
    assert "task 'explode' failed (exit code 1): RuntimeError: the fixture task exploded on purpose" in result.stderr
    assert "- downstream: UPSTREAM_FAILED (upstream task 'explode' did not succeed)" in result.stdout
    table = cli(home, "jobs", "runs").stdout
    assert "UPSTREAM_FAILED" in table and "RuntimeError" in table


def test_jobs_run_refuses_bad_input(home):
    unknown = cli(home, "jobs", "run", "chain", "--param", "nope=1")
    assert unknown.returncode == 1 and "'nope' is not a parameter of job 'chain'" in unknown.stderr
    remote = cli(home, "--target", "dev", "jobs", "run", "chain")
    assert remote.returncode == 1 and "databricks bundle run -t dev chain" in remote.stderr


def test_jobs_validate(home):
    result = cli(home, "jobs", "validate")
    assert result.returncode == 0, result.stderr
    assert "valid for dev, local" in result.stdout


@pytest.mark.slow
def test_the_home_option_shows_its_default(home):
    result = cli_process(home, "--help")
    assert result.returncode == 0 and "[default: (./.lakehouse)]" in result.stdout, result.stdout


def test_jobs_runs_without_history(home):
    result = cli(home, "jobs", "runs")
    assert result.returncode == 0 and "(no rows)" in result.stdout


# -- demo -------------------------------------------------------------------------------------

def test_demo_steps_are_one_list_in_loop_order():
    assert [step.name for step in DEMO_STEPS] == ["data", "pipeline", "inference", "monitoring", "drifted day",
                                                  "features 2", "inference 2", "real-time", "monitoring 2", "retrain",
                                                  "governance", "reproduce", "report", "summary", "console"]
    assert DEMO_STEPS[1].requires == ("data",)


def test_the_demo_s_real_time_step_logs_every_request_for_monitoring(copy_home):
    """Issue 28: the demo's real-time traffic goes through ``healthcare-mlops serve`` and every
    request is in ``serving_payload``, answered by the champion, dated today (monitoring's window)."""
    from conftest import PIPELINE_AS_OF
    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tables import SERVING_PAYLOAD

    day = dt.date.fromisoformat(PIPELINE_AS_OF)             # the pipeline's features are the "second day"
    context = demo_context(copy_home, 100, first_day=day - dt.timedelta(days=1), echo=False)
    outcome = demo_module._realtime_traffic(context)
    assert outcome.status == "ok", outcome
    payload = DeltaCatalog(resolve_settings("local", copy_home)).read_pandas(SERVING_PAYLOAD)
    assert len(payload) == demo_module.REALTIME_REQUESTS and (payload["status_code"] == 200).all()
    assert set(payload["model_version"]) == {"1"}
    assert set(payload["request_date"]) == {dt.datetime.now(dt.timezone.utc).date()}
    assert not payload["request"].str.contains("patient_natural_key|ssn|first_name", regex=True).any()


def test_a_skipped_demo_step_skips_the_steps_that_need_it(home):
    context = demo_context(home, 100, bundle=load_bundle(FIXTURE), no_app=True, echo=False)
    calls = []
    steps = [DemoStep("data", "fake data", lambda c: calls.append("data")),
             DemoStep("pipeline", "not wanted", lambda c: calls.append("pipeline"), skip_if=lambda c: "not today",
                      requires=("data",)),
             DemoStep("inference", "needs pipeline", lambda c: calls.append("inference"), requires=("pipeline",)),
             DemoStep("monitoring", "needs inference", lambda c: calls.append("monitoring"), requires=("inference",)),
             DEMO_STEPS[-1]]
    outcome = run_demo(context, steps)
    assert calls == ["data"]
    assert outcome["data"] == "ok"
    assert outcome["pipeline"] == "skipped: not today"
    assert outcome["inference"] == "skipped: needs step pipeline"
    assert outcome["monitoring"] == "skipped: needs step inference"
    assert outcome["console"] == "skipped: --no-app"


@pytest.mark.slow
def test_demo_runs_jobs_through_the_runner(home, monkeypatch):
    context = demo_context(home, 100, bundle=load_bundle(FIXTURE), echo=False)
    steps = [DemoStep("chain", "a job", demo_module.job_step("chain", lambda c: {"day": c.first_day.isoformat()})),
             DemoStep("after", "needs chain", lambda c: None, requires=("chain",)),
             DemoStep("console", "console", demo_module._console, demo_module._console_skip)]
    outcome = run_demo(context, steps)
    assert outcome == {"chain": "ok", "after": "ok", "console": "ok"}
    marker = json.loads((home / "markers" / "first.json").read_text())
    assert marker["params"]["day"] == context.first_day.isoformat()
    assert context.second_day > context.first_day


@pytest.mark.slow
def test_the_summary_says_the_retrain_failed_where_and_why(home, capsys):
    """The retrain a critical alert started is read from job_runs, as the console reads it: a failed
    run is `failed` in the summary, with its task and error, and the demo goes on to the next step."""
    import pyarrow as pa

    from healthcare_mlops.emulator.runner import run_job
    from healthcare_mlops.monitoring import alerts as al
    from healthcare_mlops.monitoring.evaluation import Verdict
    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tables import ML_MODEL_ALERTS

    context = demo_context(home, 100, bundle=load_bundle(FIXTURE))
    settings = resolve_settings("local", home)
    assert demo_module._retrain(context).status == "none"         # no alert table yet: nothing started
    retrain = run_job("failing", {}, home=home, bundle=context.bundle, trigger="monitoring", echo=False)
    day = context.second_day
    rows = al.alert_rows(settings.tables, [Verdict("composite_drift", "critical", "", 0.6, 0.3, "moved", {})], "r1",
                         day, day, dt.datetime.now(dt.timezone.utc), None)
    rows[0]["retrain_run_id"] = str(retrain.run_id)
    DeltaCatalog(settings).write(pa.Table.from_pylist(rows, schema=al.alert_arrow_schema()), ML_MODEL_ALERTS,
                                 mode="replace_partition", partition={"window_start": day, "window_end": day},
                                 partition_by=["window_start", "window_end"])
    steps = [DemoStep("retrain", "the retrain", demo_module._retrain), DemoStep("after", "next", lambda c: None),
             DemoStep("summary", "outcomes", demo_module._summary)]
    outcome = run_demo(context, steps)
    assert outcome["retrain"].startswith(f"failed: failing run {retrain.run_id} FAILED at task explode: ")
    assert outcome["after"] == "ok"
    summary = capsys.readouterr().out.split("== demo summary")[1]
    assert "retrain      failed" in summary and all(len(line) <= 100 for line in summary.splitlines())


@pytest.mark.slow
def test_demo_stops_on_a_failing_job(home):
    context = demo_context(home, 100, bundle=load_bundle(FIXTURE), echo=False)
    steps = [DemoStep("failing", "fails", demo_module.job_step("failing", lambda c: {})),
             DemoStep("never", "not reached", lambda c: pytest.fail("ran after a failure"))]
    with pytest.raises(Exception, match="task 'explode' failed"):
        run_demo(context, steps)
