"""``healthcare-mlops jobs``: the bundle's jobs, run locally by the same definition Databricks runs."""

from __future__ import annotations

import json

import typer

from healthcare_mlops.cli.context import state
from healthcare_mlops.cli.output import Format, ReportFormat, format_option, print_frame, print_json
from healthcare_mlops.settings import LOCAL_TARGET

app = typer.Typer(help="List, run (locally) and validate the bundle's jobs; see their run history.",
                  no_args_is_help=True)


@app.command("list")
def list_jobs(ctx: typer.Context,
              fmt: ReportFormat = format_option(ReportFormat)) -> None:
    """Every job of the bundle with its schedule, parameters, tasks and their dependencies."""
    from healthcare_mlops.bundle.definition import load_bundle
    from healthcare_mlops.emulator.runner import describe_jobs

    jobs = describe_jobs(load_bundle(), state(ctx).target)
    if fmt == Format.json:
        print_json(jobs)
        return
    for job in jobs:
        schedule = job["schedule"]
        when = (f"{schedule['quartz_cron_expression']} {schedule['timezone_id']} ({schedule['pause_status']})"
                if schedule else "no schedule")
        typer.echo(f"{job['job_key']}  [{when}]  {job['file']}")
        if job["parameters"]:
            typer.echo("  parameters: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in job["parameters"].items()))
        for task in job["tasks"]:
            after = ", ".join(task["depends_on"]) or "-"
            typer.echo(f"  {task['task_key']:28} after {after:28} {task['entry_point']}")


@app.command("run")
def run(ctx: typer.Context,
        job_key: str = typer.Argument(..., help="The job's key in the bundle (see jobs list)."),
        param: list[str] = typer.Option(None, "--param", "-p",
                                        help="Override a job parameter: name=value (repeatable)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only progress, not the tasks' own output.")) -> None:
    """Run a job (operator role): locally its tasks in dependency order, each in its own process, recorded
    in job_runs; against a workspace target, the deployed job (by $HEALTHCARE_MLOPS_JOB_ID_<KEY> or its
    numeric id). The audit table records who started it."""
    from healthcare_mlops.emulator.runner import parse_param_overrides
    from healthcare_mlops.bundle.launchers import QUEUED
    from healthcare_mlops.composition import cli_runtime, launcher

    # refuse a job that cannot start offline before the settings ask the workspace for anything
    jobs = launcher(state(ctx).settings(resolve_model_name=False))
    params = parse_param_overrides(param)
    jobs.check(job_key)
    runtime = cli_runtime(state(ctx).settings())
    identity = runtime.identity
    identity.require("run_job")
    run = jobs.run_now(job_key, params, trigger=f"cli:{identity.user}", wait=True, task_output=not quiet)
    runtime.audit_log.record_job_run(identity, job_key, run.run_id, params)
    if run.status == QUEUED:              # a workspace run: it goes on there
        typer.echo(f"started {job_key}: run {run.run_id} ({run.status})")
    run.raise_for_status()


@app.command("runs")
def runs(ctx: typer.Context,
         job: str = typer.Option(None, "--job", help="Only this job's runs."),
         limit: int = typer.Option(20, "--limit", min=1, help="The latest N job runs (with their tasks)."),
         fmt: Format = format_option()) -> None:
    """The local run history (the job_runs table): each job run followed by its task runs."""
    from healthcare_mlops.emulator.run_history import read_runs

    frame = read_runs(state(ctx).settings(), job_key=job, limit=limit)
    if fmt == Format.table:
        frame = frame.drop(columns=["parameters"])
        frame["task_key"] = frame["task_key"].fillna("")
        frame["error"] = [("" if not isinstance(e, str) or not e.strip() else e.strip().splitlines()[0][:100])
                          for e in frame["error"]]
        frame["parent_run_id"] = frame["parent_run_id"].astype("string").fillna("")
    print_frame(frame, fmt)


@app.command("validate")
def validate(ctx: typer.Context,
             all_targets: bool = typer.Option(True, "--all-targets/--target-only",
                                              help="Every bundle target and local, or only --target.")) -> None:
    """Check the bundle offline (typed job models, references, files, DAGs, schedules, app.yaml)."""
    from healthcare_mlops.bundle.definition import load_bundle
    from healthcare_mlops.emulator.validation import check_bundle, typed_models_available

    bundle = load_bundle()
    targets = None if all_targets else [state(ctx).target]
    typed = typed_models_available()
    if not typed:
        typer.echo("note: databricks-bundles is not installed; typed model checks skipped", err=True)
    check_bundle(bundle, targets, typed=typed)
    shown = ", ".join(targets or [*bundle.target_names(), LOCAL_TARGET])
    typer.echo(f"bundle {bundle.document.get('bundle', {}).get('name')}: valid for {shown}")
