"""The local runner: executes the bundle's own job definitions on a laptop.

``run_job("batch_inference", {"scoring_date": "2026-01-01"})`` reads the bundle for the
``local`` target (variable defaults overridden by ``settings.LOCAL_OVERRIDES``), resolves
the job's parameters (defaults, then the overrides given, as ``databricks bundle run
--params`` does) and the ``{{job.parameters.*}}``, ``{{job.run_id}}``, ``{{task.name}}``
... references in the task parameters, and runs the tasks in dependency order, each in
its own process exactly as a ``spark_python_task`` starts::

    [sys.executable, <python_file>, *parameters]   cwd = bundle root, HEALTHCARE_MLOPS_HOME set

A task runs when its ``run_if`` holds (default ``ALL_SUCCESS``), else it is recorded as
``UPSTREAM_FAILED`` (or ``EXCLUDED``). Tasks run one at a time, unretried (``max_retries`` is
Databricks'), within ``timeout_seconds``, under Spark Connect as clients of the run's one server
(``spark_server.py``). Every job and task run is appended to ``job_runs``, each task's output
kept in ``<home>/logs/job_runs/<run_id>/<task_key>.log``. ``run_guard.py``: each task's process
group ends with the runner, a killed runner's run is recorded as ``INTERRUPTED`` at the next
start, ``max_concurrent_runs`` and ``queue`` are honoured, the audit log gets each run's start and end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from healthcare_mlops.emulator import run_guard, run_history
from healthcare_mlops.emulator.dag import dependencies, run_order
from healthcare_mlops.bundle.definition import BUNDLE_ROOT_ENV, Bundle, load_bundle, relative_display
from healthcare_mlops.bundle.interpolation import ResolvedBundle, resolve_target, substitute_dynamic
from healthcare_mlops.bundle.run_states import CANCELED, EXCLUDED, FAILED, SUCCEEDED, TIMED_OUT, UPSTREAM_FAILED
from healthcare_mlops.emulator.run_history import RunRecord
from healthcare_mlops.emulator.spark_server import RunSparkServer, SparkServerFailed
from healthcare_mlops.emulator.task_process import run_task
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import HOME_ENV, LOCAL_TARGET, Settings, resolve_home

MESSAGE_TAIL_LINES = 12    # traceback lines the command's error message shows at most


@dataclass
class TaskPlan:
    task_key: str
    depends_on: list
    run_if: str
    python_file: Path
    parameters: list          # strings, {{...}} not yet substituted
    timeout_seconds: int | None


@dataclass
class JobPlan:
    """Everything about one job that is known before it starts: checked, ordered, resolved."""

    job_key: str
    name: str
    resolved: ResolvedBundle
    order: list
    tasks: dict
    parameters: dict
    timeout_seconds: int | None
    max_concurrent_runs: int = 1      # Databricks' default
    queue: bool = False               # queue.enabled: a run at the limit waits instead of being refused

    @property
    def bundle(self) -> Bundle:
        return self.resolved.bundle


@dataclass
class TaskRun:
    task_key: str
    run_id: int
    status: str
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    argv: list = field(default_factory=list)
    exit_code: int | None = None
    error: str | None = None
    log_path: Path | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()


@dataclass
class JobRun:
    """The outcome of ``run_job``: the job's status and every task's."""

    job_key: str
    run_id: int
    status: str
    parameters: dict
    start_time: dt.datetime
    end_time: dt.datetime | None = None
    tasks: list = field(default_factory=list)
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    def task(self, task_key: str) -> TaskRun:
        for task in self.tasks:
            if task.task_key == task_key:
                return task
        raise KeyError(task_key)

    def raise_for_status(self) -> "JobRun":
        """``UserError`` with the failing task's error when the job did not succeed."""
        if not self.succeeded:
            raise UserError(f"job '{self.job_key}' (run {self.run_id}) {self.status}: {self.error}")
        return self


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def plan_job(job_key: str, params: dict | None = None, bundle: Bundle | None = None) -> JobPlan:
    """Check and resolve ``job_key`` for the local target; nothing runs yet.

    Refused here, before any task starts: an unknown job, an unknown job parameter, a
    cycle or a dangling ``depends_on``, a task type other than ``spark_python_task``, a
    missing python file, and a reference that cannot be resolved locally.
    """
    from healthcare_mlops.emulator.validation import python_file_location

    bundle = bundle or load_bundle()
    resolved = resolve_target(bundle, LOCAL_TARGET)
    job = resolved.job(job_key)
    scope = (f"resources.jobs.{job_key}.", "variables.")
    problems = [f"{bundle.source_of(path)}: {path}: {message}" for path, message in resolved.problems
                if path.startswith(scope)]
    if problems:
        raise UserError(f"job '{job_key}' cannot run:\n  " + "\n  ".join(problems))
    tasks, queue = job.get("tasks") or [], job.get("queue") or {}
    if not tasks:
        raise UserError(f"job '{job_key}' has no tasks")
    order = run_order(job_key, tasks)

    declared = {p["name"]: p.get("default", "") for p in job.get("parameters") or [] if isinstance(p, dict)}
    values = dict(declared)
    for name, value in (params or {}).items():
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise UserError(f"'{name}' is not a parameter of job '{job_key}' (parameters: {known})")
        values[name] = "" if value is None else _text(value)

    plans = {}
    for task in tasks:
        key = task["task_key"]
        python_task = task.get("spark_python_task")
        if not isinstance(python_task, dict):
            kinds = [k for k in task if k.endswith("_task")]
            raise UserError(f"task '{key}' of job '{job_key}' is a {kinds[0] if kinds else 'task'}; "
                            "the local runner runs spark_python_task tasks only")
        location = python_file_location(resolved, job_key, str(python_task.get("python_file", "")))
        if location is None or not location.is_file():
            raise UserError(f"task '{key}' of job '{job_key}': python file "
                            f"{python_task.get('python_file')} not found"
                            + (f" ({relative_display(location, bundle.root)})" if location else ""))
        parameters = [_text(p) for p in python_task.get("parameters") or []]
        leftovers = [p for p in parameters if "${" in p]
        if leftovers:
            raise UserError(f"task '{key}' of job '{job_key}': {leftovers[0]} cannot be resolved locally")
        plans[key] = TaskPlan(task_key=key, depends_on=dependencies(task),
                              run_if=str(task.get("run_if") or "ALL_SUCCESS"), python_file=location,
                              parameters=parameters, timeout_seconds=task.get("timeout_seconds") or None)
    return JobPlan(job_key=job_key, name=str(job.get("name") or job_key), resolved=resolved, order=order,
                   tasks=plans, parameters=values, timeout_seconds=job.get("timeout_seconds") or None,
                   max_concurrent_runs=int(job.get("max_concurrent_runs") or 1), queue=bool(queue.get("enabled")))


def _should_run(plan: TaskPlan, runs: dict) -> tuple[bool, str]:
    """Whether a task runs given its upstream statuses (Databricks ``run_if``), and why not."""
    upstream = [runs[name] for name in plan.depends_on]
    if not upstream:
        return True, ""
    ok = [run.status == SUCCEEDED for run in upstream]
    failed = [run.task_key for run in upstream if run.status != SUCCEEDED]
    condition = plan.run_if
    verdict = {
        "ALL_SUCCESS": all(ok),
        "ALL_DONE": True,
        "NONE_FAILED": not any(run.status in (FAILED, TIMED_OUT) for run in upstream),
        "AT_LEAST_ONE_SUCCESS": any(ok),
        "ALL_FAILED": not any(ok),
        "AT_LEAST_ONE_FAILED": not all(ok),
    }.get(condition, all(ok))
    if verdict:
        return True, ""
    if condition == "ALL_SUCCESS":
        return False, "upstream task " + ", ".join(f"'{name}'" for name in failed) + " did not succeed"
    return False, f"run_if {condition} is not met"


def _dynamic_values(plan: JobPlan, run_id: int, start: dt.datetime, trigger: str,
                    task_key: str, task_run_id: int, runs: dict) -> dict:
    values = {
        "job.id": plan.job_key, "job.name": plan.name, "job.run_id": run_id, "job.repair_count": 0,
        "job.trigger.type": "PERIODIC" if trigger == "schedule" else "ONE_TIME",
        "task.name": task_key, "task.run_id": task_run_id, "task.execution_count": 1,
        "workspace.id": "local", "workspace.url": "local",
    }
    for prefix in ("job.start_time", "job.trigger.time"):
        values.update({
            f"{prefix}.iso_date": start.date().isoformat(),
            f"{prefix}.iso_datetime": start.replace(microsecond=0, tzinfo=None).isoformat(),
            f"{prefix}.timestamp_ms": int(start.timestamp() * 1000),
            f"{prefix}.year": start.year, f"{prefix}.month": start.month, f"{prefix}.day": start.day,
            f"{prefix}.hour": start.hour, f"{prefix}.minute": start.minute, f"{prefix}.second": start.second,
            f"{prefix}.is_weekday": _text(start.weekday() < 5), f"{prefix}.is_weekend": _text(start.weekday() >= 5),
            f"{prefix}.day_of_week": start.isoweekday(), f"{prefix}.timezone": "UTC",
        })
    values.update({f"job.parameters.{name}": value for name, value in plan.parameters.items()})
    for name, run in runs.items():
        values[f"tasks.{name}.run_id"] = run.run_id
        values[f"tasks.{name}.result_state"] = {SUCCEEDED: "success", FAILED: "failed",
                                                TIMED_OUT: "timedout", CANCELED: "cancelled",
                                                UPSTREAM_FAILED: "upstream_failed",
                                                EXCLUDED: "excluded"}.get(run.status, run.status.lower())
    return values


def _excerpt(lines: list) -> list:
    """The part of a task's stderr that explains a failure: its last traceback, else its last lines."""
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        excerpt = lines[starts[-1]:]
    elif lines and lines[-1].startswith("error:"):
        excerpt = []
    else:
        excerpt = lines[-3:]
    if len(excerpt) > MESSAGE_TAIL_LINES:
        excerpt = ["..."] + excerpt[-MESSAGE_TAIL_LINES:]
    return excerpt


def _error_message(task: TaskRun) -> str:
    """``task 'x' failed (exit code 1): <cause>`` and the lines that explain it."""
    lines = (task.error or "").splitlines()
    head, body = (lines[0], lines[1:]) if lines else ("", [])
    status = task.status.lower().replace("_", " ")
    if head.startswith("exit code "):
        code, _, cause = head.partition(": ")
        first = f"task '{task.task_key}' {status} ({code}): {cause}"
    else:
        first = f"task '{task.task_key}' {status}" + (f": {head}" if head else "")
    text = "\n".join([first, *("    " + line for line in _excerpt(body))])
    if task.log_path:
        text += f"\n    (full output: {task.log_path})"
    return text


def run_job(job_key: str, params: dict | None = None, *, home: str | os.PathLike | None = None,
            bundle: Bundle | None = None, bundle_root: str | os.PathLike | None = None,
            trigger: str = "manual", echo: bool = True, task_output: bool | None = None,
            record: bool = True) -> JobRun:
    """Run a bundle job locally and record it in ``job_runs``; returns the ``JobRun``.

    ``params`` override the job's parameters (names must be declared in the job). ``echo``
    prints the progress, ``task_output`` (default: ``echo``) the tasks' own output. The run
    does not raise when a task fails: check ``JobRun.succeeded`` or call
    ``raise_for_status()``. Problems found before anything runs (unknown job or parameter,
    cycle, missing file) are a ``UserError``.
    """
    if bundle is None:
        bundle = load_bundle(bundle_root)
    plan = plan_job(job_key, params, bundle)
    settings = _job_settings(plan, home)
    say = (lambda text: print(text, flush=True)) if echo else (lambda text: None)
    run_id = run_history.new_run_id()
    marker = run_guard.start_run(settings, run_id, job_key, trigger, plan.max_concurrent_runs, plan.queue,
                                 say) if record else None
    start = _now()
    _substitute_job_parameters(plan, run_id, start, trigger)
    job_run = JobRun(job_key=job_key, run_id=run_id, status=SUCCEEDED, parameters=dict(plan.parameters),
                     start_time=start)
    execution = _Execution(plan, bundle, settings, job_run, trigger, echo if task_output is None else task_output,
                           say, marker, record)
    execution.server = RunSparkServer(bundle.root, execution.env(), execution.log_dir(), execution.task_output, say)
    say(f"job {job_key} run {run_id}: {' -> '.join(plan.order)}")
    with run_guard.stop_on_signals():
        try:
            for task_key in plan.order:
                execution.run_task(task_key)
        except KeyboardInterrupt as stop:
            execution.cancel_the_rest(stop)
            job_run.status, job_run.error = CANCELED, _interruption(stop)
            _record_job(settings, job_run, trigger, record, marker)
            raise
        finally:
            execution.server.stop()
    _conclude(job_run)
    _record_job(settings, job_run, trigger, record, marker)
    say(f"job {job_key} run {run_id}: {job_run.status} in "
        f"{(job_run.end_time - job_run.start_time).total_seconds():.1f} s")
    return job_run


def _job_settings(plan: JobPlan, home: str | os.PathLike | None) -> Settings:
    """The settings a job's tasks run with: the local target, its catalog and schema, the resolved variables."""
    variables = plan.resolved.variables
    return Settings(target=LOCAL_TARGET, catalog=str(variables["catalog"]), schema=str(variables["schema"]),
                    home=resolve_home(home), variables=variables)


def _substitute_job_parameters(plan: JobPlan, run_id: int, start: dt.datetime, trigger: str) -> None:
    """Fill the run's dynamic values into the job's parameters, in place.

    A parameter's value may itself hold ``{{job.start_time.iso_date}}`` ... (as Databricks
    allows), but not another ``{{job.parameters.*}}``.
    """
    base = _dynamic_values(plan, run_id, start, trigger, "", 0, {})
    job_values = {k: v for k, v in base.items() if not k.startswith("job.parameters.")}
    plan.parameters = {name: substitute_dynamic(value, job_values) for name, value in plan.parameters.items()}


def _conclude(job_run: JobRun) -> None:
    """Set the job run's status and error from its tasks: the first failure or time-out decides."""
    failures = [t for t in job_run.tasks if t.status not in (SUCCEEDED, EXCLUDED)]
    first_failure = next((t for t in failures if t.status in (FAILED, TIMED_OUT)), None)
    if first_failure is not None:
        job_run.status = TIMED_OUT if first_failure.status == TIMED_OUT else FAILED
        job_run.error = _error_message(first_failure)
    elif failures:
        job_run.status, job_run.error = FAILED, _error_message(failures[0])


@dataclass
class _Execution:
    """One job run in progress: what each of its tasks needs to start, and the task runs so far."""

    plan: JobPlan
    bundle: Bundle
    settings: Settings
    job_run: JobRun
    trigger: str
    task_output: bool
    say: Callable[[str], None]
    marker: run_guard.RunMarker | None
    record: bool
    runs: dict = field(default_factory=dict)
    server: RunSparkServer | None = None      # set by run_job

    def finish(self, task_run: TaskRun) -> None:
        """Keep a task's run, on the job run and (when recording) in ``job_runs``."""
        self.runs[task_run.task_key] = task_run
        self.job_run.tasks.append(task_run)
        if self.record:
            run_history.append_runs(self.settings, [RunRecord(
                run_id=task_run.run_id, parent_run_id=self.job_run.run_id, job_key=self.job_run.job_key,
                task_key=task_run.task_key, status=task_run.status, trigger=self.trigger,
                start_time=task_run.start_time or _now(), end_time=task_run.end_time or _now(),
                error=task_run.error, parameters=task_run.argv)])

    def run_task(self, task_key: str) -> None:
        """Run one task in its own process when its ``run_if`` holds, else record why it did not run."""
        task = self.plan.tasks[task_key]
        task_run_id = run_history.new_run_id()
        runs_ok, reason = _should_run(task, self.runs)
        if not runs_ok:
            status = UPSTREAM_FAILED if task.run_if == "ALL_SUCCESS" else EXCLUDED
            now = _now()
            self.say(f"- {task_key}: {status} ({reason})")
            self.finish(TaskRun(task_key, task_run_id, status, now, now, error=reason))
            return
        values = _dynamic_values(self.plan, self.job_run.run_id, self.job_run.start_time, self.trigger, task_key,
                                 task_run_id, self.runs)
        argv = [substitute_dynamic(p, values) for p in task.parameters]
        log_path = self.log_dir() / f"{task_key}.log"
        self.say(f"> {task_key}: {relative_display(task.python_file, self.bundle.root)} {shlex.join(argv)}")
        task_start = _now()
        started = None if self.marker is None else (
            lambda pid: self.marker.task_started(task_key, task_run_id, task_start, argv, pid))
        try:
            env = {**self.env(), **self.server.task_env()}
            status, exit_code, error = run_task(task_key, task.python_file, argv, self.bundle.root, env,
                                                log_path, self.task_output, self._timeout(task), started)
        except SparkServerFailed as failure:
            status, exit_code, error = FAILED, None, str(failure)
        except KeyboardInterrupt as stop:
            self.finish(TaskRun(task_key, task_run_id, CANCELED, task_start, _now(), argv,
                                error=_interruption(stop), log_path=log_path))
            raise
        self.server.task_ended(status == SUCCEEDED)
        task_run = TaskRun(task_key, task_run_id, status, task_start, _now(), argv, exit_code, error, log_path)
        self.say(f"{'+' if status == SUCCEEDED else 'x'} {task_key}: {status} in "
                 f"{task_run.duration_seconds:.1f} s")
        self.finish(task_run)

    def log_dir(self) -> Path:
        """The run's logs: one per task, and the Spark Connect server's."""
        return self.settings.home.resolve() / "logs" / "job_runs" / str(self.job_run.run_id)

    def env(self) -> dict:
        """The task process's environment: the runner's, plus the home and the bundle root it reads."""
        return {**os.environ, HOME_ENV: str(self.settings.home.resolve()),
                BUNDLE_ROOT_ENV: str(self.bundle.root.resolve()), "PYTHONUNBUFFERED": "1"}

    def _timeout(self, task: TaskPlan) -> float | None:
        """A task's time limit: its own ``timeout_seconds``, cut to what is left of the job's (at least 1 s)."""
        if self.plan.timeout_seconds is None:
            return task.timeout_seconds
        deadline = self.job_run.start_time.timestamp() + self.plan.timeout_seconds
        left = max(deadline - _now().timestamp(), 1.0)
        return min(task.timeout_seconds, left) if task.timeout_seconds else left

    def cancel_the_rest(self, stop: KeyboardInterrupt) -> None:
        """Record every task that has not run as ``CANCELED`` when the run is stopped."""
        for task_key in self.plan.order:
            if task_key not in self.runs:
                now = _now()
                self.finish(TaskRun(task_key, run_history.new_run_id(), CANCELED, now, now,
                                    error=_interruption(stop)))


def _interruption(stop: KeyboardInterrupt) -> str:
    """Why a run stopped: ``interrupted (SIGTERM)``, or Ctrl+C's ``interrupted``."""
    return f"interrupted ({stop.name})" if isinstance(stop, run_guard.RunnerStopped) else "interrupted"


def _record_job(settings: Settings, job_run: JobRun, trigger: str, record: bool,
                marker: run_guard.RunMarker | None = None) -> None:
    """Append the job run's row; its marker goes once the row is written."""
    job_run.end_time = _now()
    if record:
        run_history.append_runs(settings, [RunRecord(
            run_id=job_run.run_id, job_key=job_run.job_key, status=job_run.status, trigger=trigger,
            start_time=job_run.start_time, end_time=job_run.end_time, error=job_run.error,
            parameters=json.dumps(job_run.parameters))])
        run_guard.record_audit(settings, job_run.job_key, job_run.run_id, trigger, job_run.status, job_run.error)
    if marker is not None:
        marker.remove()


def parse_param_overrides(items: list[str] | None) -> dict:
    """``["as_of=2026-01-01", "mode=validation"]`` -> a dict (``--param`` on the command line)."""
    values: dict = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--param must be name=value, not '{item}'")
        values[name.strip()] = value
    return values


def describe_jobs(bundle: Bundle | None = None, target: str = LOCAL_TARGET) -> list[dict]:
    """Every job with its schedule, parameters and tasks (``healthcare-mlops jobs list``)."""
    from healthcare_mlops.emulator.validation import python_file_location

    bundle = bundle or load_bundle()
    resolved = resolve_target(bundle, target)
    described = []

    def entry_point(job_key: str, task: dict) -> dict:
        python_file = str((task.get("spark_python_task") or {}).get("python_file", ""))
        location = python_file_location(resolved, job_key, python_file) if python_file else None
        return {"entry_point": relative_display(location, bundle.root) if location else python_file}

    for job_key, job in resolved.jobs().items():
        schedule = job.get("schedule")
        tasks = job.get("tasks") or []
        try:
            order = run_order(job_key, tasks)
        except UserError:
            order = [t.get("task_key") for t in tasks]
        by_key = {t.get("task_key"): t for t in tasks}
        described.append({
            "job_key": job_key,
            "name": job.get("name"),
            "file": bundle.source_of(f"resources.jobs.{job_key}"),
            "schedule": None if not isinstance(schedule, dict) else {
                "quartz_cron_expression": schedule.get("quartz_cron_expression"),
                "timezone_id": schedule.get("timezone_id"),
                "pause_status": schedule.get("pause_status") or "UNPAUSED",
            },
            "parameters": {p.get("name"): p.get("default") for p in job.get("parameters") or []},
            "tasks": [{
                "task_key": key,
                "depends_on": dependencies(by_key.get(key) or {}),
                "python_file": ((by_key.get(key) or {}).get("spark_python_task") or {}).get("python_file"),
                **entry_point(job_key, by_key.get(key) or {}),
                "parameters": [_text(p) for p in
                               ((by_key.get(key) or {}).get("spark_python_task") or {}).get("parameters") or []],
            } for key in order],
        })
    return described
