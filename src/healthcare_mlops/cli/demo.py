"""``healthcare-mlops demo``: the whole local loop, step by step, through the local runner.

The steps are the list ``DEMO_STEPS``, run in order; to extend the demo, add a
``DemoStep`` to it. A step can say when it is not wanted (``skip_if``: the console under
``--no-app``) and which earlier steps it needs (``requires``); a skipped step skips the
steps that need it, and a failing step stops the demo. A step's body may return an
``Outcome`` (default ``ok``); the ``summary`` step, just before the console, lists every
earlier step's outcome, so a step that reports on something the loop did by itself (the
retrain a critical alert started, governance's decision on it) says ``failed`` or
``refused`` there, with why. A new step goes before ``summary`` to be in it.
Jobs run through ``runner.run_job`` (trigger ``demo``), so every run is in ``job_runs``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from healthcare_mlops.bundle.definition import BUNDLE_ROOT_ENV, Bundle, load_bundle
from healthcare_mlops.emulator.runner import run_job
from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.serving_endpoint import DEFAULT_SCORING_PORT
from healthcare_mlops.settings import HOME_ENV

CONSOLE_ENTRY = "app/main.py"
CONSOLE_PORT, SCORING_PORT = 8501, DEFAULT_SCORING_PORT
SECOND_DAY_JOINERS = 1000
REALTIME_REQUESTS = 200     # the demo's real-time traffic: one member per request
SUMMARY_WIDTH = 100
ERROR_SHOWN = 160          # characters of a failed retrain's error in the summary (the governance line has the checks)


@dataclass
class DemoContext:
    """What every step sees: where the demo writes, how big it is, which days it plays."""

    home: Path
    patients: int
    seed: int
    first_day: dt.date
    second_day: dt.date
    no_app: bool
    bundle: Bundle
    scenario: str = "smoker_surge"
    echo: bool = True
    done: dict = field(default_factory=dict)    # step name -> Outcome
    started: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        if self.echo:
            print(text, flush=True)


@dataclass(frozen=True)
class Outcome:
    """What a step came to: ``ok``, ``skipped``, or the loop's own verdict (``failed``,
    ``refused``, ``referred``, ``promoted``, ``none``), and why in a few words."""

    status: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else self.status


OK = Outcome("ok")


@dataclass(frozen=True)
class DemoStep:
    name: str
    description: str
    run: Callable[[DemoContext], Outcome | None]
    skip_if: Callable[[DemoContext], str | None] = lambda context: None
    requires: tuple = ()


def cli(context: DemoContext, *args: str) -> None:
    """Run ``healthcare-mlops <args>`` in its own process (its own Spark, freed when it ends)."""
    command = [sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()",
               "--home", str(context.home), *args]
    env = {**os.environ, HOME_ENV: str(context.home), BUNDLE_ROOT_ENV: str(context.bundle.root)}
    result = subprocess.run(command, cwd=str(context.bundle.root), env=env)
    if result.returncode != 0:
        raise UserError(f"healthcare-mlops {' '.join(args)} failed (exit code {result.returncode})")


def job_step(job_key: str, params: Callable[[DemoContext], dict]) -> Callable[[DemoContext], None]:
    """A step body that runs a bundle job locally and stops the demo if it fails."""
    def run(context: DemoContext) -> None:
        run_job(job_key, params(context), home=context.home, bundle=context.bundle, trigger="demo",
                echo=context.echo).raise_for_status()
    return run


def _generate_first_day(context: DemoContext) -> None:
    cli(context, "data", "generate", "--patients", str(context.patients), "--seed", str(context.seed),
        "--as-of", context.first_day.isoformat())


def _generate_second_day(context: DemoContext) -> None:
    cli(context, "data", "generate", "--patients", str(SECOND_DAY_JOINERS), "--seed", str(context.seed),
        "--as-of", context.second_day.isoformat(), "--scenario", context.scenario)


def _cli_base(context: DemoContext) -> list[str]:
    return [sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()", "--home", str(context.home)]


def _cli_env(context: DemoContext) -> dict:
    return {**os.environ, HOME_ENV: str(context.home), BUNDLE_ROOT_ENV: str(context.bundle.root)}


def _console(context: DemoContext) -> None:
    """Start the scoring server and the console, print their addresses, serve until Ctrl-C."""
    base = _cli_base(context)
    env = {**_cli_env(context), "HEALTHCARE_MLOPS_SCORING_URL": f"http://127.0.0.1:{SCORING_PORT}/invocations"}
    servers = [subprocess.Popen([*base, "serve", "--port", str(SCORING_PORT)], env=env),
               subprocess.Popen([*base, "app", "--port", str(CONSOLE_PORT)], env=env)]
    context.say(f"\nconsole:        http://localhost:{CONSOLE_PORT}\n"
                f"scoring server: http://127.0.0.1:{SCORING_PORT}/invocations\n"
                "press Ctrl-C to stop both")
    try:
        for server in servers:
            server.wait()
    except KeyboardInterrupt:
        context.say("stopping the console and the scoring server")
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post_member(url: str, member: dict) -> bool:
    """One scoring request for one member, as a member-facing app sends it; True when answered."""
    request = urllib.request.Request(url, data=json.dumps({"dataframe_records": [member]}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # nosec B310  # http://127.0.0.1 only
            return response.status == 200
    except urllib.error.HTTPError:
        return False


def _wait_for_ping(base: str, server: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise UserError(f"the scoring server exited with code {server.returncode} before it served")
        try:
            with urllib.request.urlopen(f"{base}/ping", timeout=5):  # nosec B310  # http://127.0.0.1 only
                return
        except OSError:
            time.sleep(0.5)
    raise UserError(f"the scoring server did not answer {base}/ping within {seconds:.0f} s")


def _realtime_traffic(context: DemoContext) -> Outcome:
    """The second day's first ``REALTIME_REQUESTS`` members, one request each, through the local
    scoring server (as an app calls it): the server logs every request to ``serving_payload``
    (dated today), which ``model_monitoring`` judges next to the batch (volume, errors,
    latency, real-time drift)."""
    from healthcare_mlops.tables import ML_INSURANCE_FEATURES, MODEL_INPUT_COLUMNS

    frame = _engine(context).query(f"SELECT {', '.join(MODEL_INPUT_COLUMNS)} FROM {ML_INSURANCE_FEATURES} "  # nosec B608  # constants of tables.py; the day is a bound parameter
                                   f"WHERE as_of_date = :day ORDER BY patient_natural_key LIMIT {REALTIME_REQUESTS}",
                                   {"day": context.second_day})
    if frame.empty:          # nothing to send is not "every request answered"
        return Outcome("failed", f"no features for {context.second_day}: no real-time requests were sent")
    base = f"http://127.0.0.1:{_free_port()}"
    server = subprocess.Popen([*_cli_base(context), "serve", "--port", base.rsplit(":", 1)[1]], env=_cli_env(context),
                              stdout=subprocess.DEVNULL)
    try:
        _wait_for_ping(base, server)
        answered = sum(_post_member(f"{base}/invocations", member)
                       for member in json.loads(frame.to_json(orient="records")))
    finally:
        server.terminate()              # uvicorn's shutdown flushes the request log
        server.wait(timeout=60)
    if answered < len(frame):
        return Outcome("failed", f"{len(frame) - answered} of {len(frame)} real-time requests were refused "
                                 "(serving_payload has their status and error)")
    return Outcome("ok", f"{answered} real-time requests answered and logged to serving_payload")


def _engine(context: DemoContext):
    from healthcare_mlops.runtime.sql_engine import sql_engine
    from healthcare_mlops.settings import resolve_settings

    return sql_engine(resolve_settings("local", context.home))


def _report(context: DemoContext) -> None:
    """Say what the loop produced, from the tables and the registry, before the console opens."""
    from healthcare_mlops.composition import build_runtime
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tables import IS_CRITICAL_RISK, ML_MODEL_ALERTS, ML_PATIENT_PREDICTIONS

    engine = _engine(context)
    days = engine.query(f"SELECT scoring_date, count(*) AS members, sum(CAST({IS_CRITICAL_RISK} AS INT)) AS critical, "  # nosec B608  # table names are constants of tables.py
                        f"sum(CAST(requires_review AS INT)) AS review FROM {ML_PATIENT_PREDICTIONS} "
                        "GROUP BY scoring_date ORDER BY scoring_date")
    for day in days.itertuples():
        context.say(f"scored {day.scoring_date}: {int(day.members)} members, {int(day.critical)} critical, "
                    f"{int(day.review)} flagged for review")
    alerts = engine.query(f"SELECT severity, type FROM {ML_MODEL_ALERTS} "  # nosec B608  # table names are constants of tables.py; the day is a bound parameter
                          "WHERE window_end = :day ORDER BY severity, type", {"day": context.second_day})
    context.say(f"alerts on the drifted day: {len(alerts)}: "
                + ", ".join(f"{a.type} ({a.severity})" for a in alerts.itertuples()) if len(alerts)
                else "alerts on the drifted day: none")
    settings = resolve_settings("local", context.home)
    aliases = build_runtime(settings).mlflow_client.get_registered_model(settings.model_name).aliases or {}
    context.say("model: " + ", ".join(f"{alias} = version {version}" for alias, version in sorted(aliases.items())))


def _retrain(context: DemoContext) -> Outcome:
    """The retrain the drifted day's critical alert started: its run and how it ended.

    The run is the one monitoring wrote on the alert, read from ``job_runs`` as the
    console's Jobs and Overview read it, so the summary and the console tell the same story.
    """
    from healthcare_mlops.runtime.catalog import table_catalog
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tables import JOB_RUNS, ML_MODEL_ALERTS

    if not table_catalog(resolve_settings("local", context.home)).exists(ML_MODEL_ALERTS):
        return Outcome("none", "monitoring raised no alert, so no retrain")
    engine = _engine(context)
    runs = engine.query(f"SELECT DISTINCT retrain_run_id FROM {ML_MODEL_ALERTS} "  # nosec B608  # table names are constants of tables.py; the day is a bound parameter
                        "WHERE window_end = :day AND retrain_run_id IS NOT NULL", {"day": context.second_day})
    if not len(runs):
        return Outcome("none", "no critical alert on the drifted day, so no retrain")
    run_id = str(runs["retrain_run_id"].iloc[0])
    tasks = engine.query(f"SELECT job_key, task_key, status, error FROM {JOB_RUNS} "  # nosec B608  # table names are constants of tables.py; the run id is a bound parameter
                         "WHERE run_id = :run OR parent_run_id = :run ORDER BY start_time", {"run": int(run_id)})
    job = tasks[tasks["task_key"].isna()]
    if not len(job):
        return Outcome("failed", f"retrain run {run_id} is not in {JOB_RUNS}")
    name, status = f"{job['job_key'].iloc[0]} run {run_id}", str(job["status"].iloc[0])
    if status == "SUCCEEDED":
        return Outcome("ok", f"{name} SUCCEEDED")
    failed = tasks[tasks["task_key"].notna() & (tasks["status"] != "SUCCEEDED")]
    where = f" at task {failed['task_key'].iloc[0]}" if len(failed) else ""
    error = str((failed["error"].iloc[0] if len(failed) else job["error"].iloc[0]) or "").strip()
    error = error.splitlines()[-1] if error else ""
    shown = error if len(error) <= ERROR_SHOWN else error[:ERROR_SHOWN] + " ... (healthcare-mlops jobs runs)"
    return Outcome("failed", f"{name} {status}{where}" + (f": {shown}" if shown else ""))


def _governance(context: DemoContext) -> Outcome:
    from healthcare_mlops.settings import resolve_settings

    return governance_outcome(resolve_settings("local", context.home))


def _checks(checks: list[dict]) -> str:
    return "; ".join(f"{c['name']} = {c['value']} (needs {c['threshold']})" for c in checks)


def governance_outcome(settings) -> Outcome:
    """What governance decided about the latest challenger, and why, in a model owner's words."""
    from healthcare_mlops.composition import build_runtime

    status = build_runtime(settings).governance().status()
    challenger, champion = status["challenger"], status["champion"]
    if challenger is None or challenger == champion:
        if not champion:
            return Outcome("none", "no champion")
        compared = next((c for c in status["champion_checks"] if c["name"] == "champion_comparison"), None)
        why = f" ({compared['detail']})" if compared and compared.get("detail") else ""
        return Outcome("promoted", f"version {champion} is the champion{why}")
    if status["referred"]:
        referred = "; ".join(f"{c['name']} {c['threshold']}: {c['detail']}" for c in status["referred"])
        return Outcome("referred", f"version {challenger} waits for an approver ({referred}); version {champion} "
                                   f"stays champion until then: healthcare-mlops governance approve --version "
                                   f"{challenger} --comment ... (or reject)")
    failed = [c for c in status["checks"] if c["hard"] and c["verdict"] == "fail"]
    if failed:
        return Outcome("refused", f"version {challenger}, failed {_checks(failed)}; version {champion} stays champion")
    return Outcome("waiting", f"version {challenger} waits for an approver (approval mode {status['approval_mode']})")


def _summary(context: DemoContext) -> None:
    """Every earlier step's outcome, before the console starts serving (and blocks)."""
    minutes, seconds = divmod(round(time.monotonic() - context.started), 60)
    context.say(f"\n== demo summary ({minutes} min {seconds} s since the demo started)")
    for name, outcome in context.done.items():
        context.say(textwrap.fill(f"{name:13}{outcome.status:10}{outcome.detail}", width=SUMMARY_WIDTH,
                                  initial_indent="  ", subsequent_indent=" " * 25))
    context.say(f"\nlocal home: {context.home}\n"
                "next: healthcare-mlops jobs runs | healthcare-mlops alerts list | "
                "healthcare-mlops governance status")


def _reproduce_champion(context: DemoContext) -> Outcome:
    """Rebuild the champion from its lineage (job model_reproduction) and say how it compared;
    a difference is an outcome in the summary, not a reason to stop the demo."""
    from healthcare_mlops.settings import resolve_settings

    run = run_job("model_reproduction", {"model_version": ""}, home=context.home, bundle=context.bundle,
                  trigger="demo", echo=context.echo)
    return reproduction_outcome(resolve_settings("local", context.home), run.status)


def reproduction_outcome(settings, run_status: str) -> Outcome:
    """The champion's last reproduction, from its version tags."""
    from healthcare_mlops.governance.lineage import REPRODUCED_AT_TAG, RESULT_TAG
    from healthcare_mlops.composition import build_runtime
    from healthcare_mlops.governance.champion import resolve_champion

    runtime = build_runtime(settings)
    champion = resolve_champion(runtime.audit_log, runtime.registry)
    result = champion.tags.get(RESULT_TAG)
    if not result:
        return Outcome("failed", f"version {champion.version} was not reproduced (model_reproduction {run_status}; "
                                 "healthcare-mlops jobs runs)")
    return Outcome(result, f"version {champion.version} rebuilt from its lineage at "
                           f"{champion.tags.get(REPRODUCED_AT_TAG)} (healthcare-mlops governance reproduce "
                           f"--version {champion.version})")


def _console_skip(context: DemoContext) -> str | None:
    return "--no-app" if context.no_app else None


def _day1(context: DemoContext) -> str:
    return context.first_day.isoformat()


def _day2(context: DemoContext) -> str:
    return context.second_day.isoformat()


DEMO_STEPS: list[DemoStep] = [
    DemoStep("data", "generate the first day's members (data generate)", _generate_first_day),
    DemoStep("pipeline", "features, training, governance, validation scoring, monitoring set-up "
                         "(job ml_training_pipeline)",
             job_step("ml_training_pipeline", lambda c: {"as_of": _day1(c), "scoring_date": _day1(c)}),
             requires=("data",)),
    DemoStep("inference", "score the first day with the champion (job batch_inference)",
             job_step("batch_inference", lambda c: {"scoring_date": _day1(c), "mode": "production"}),
             requires=("pipeline",)),
    DemoStep("monitoring", "drift, fairness and alerts for the first day (job model_monitoring)",
             job_step("model_monitoring", lambda c: {"window_start": _day1(c), "window_end": _day1(c)}),
             requires=("inference",)),
    DemoStep("drifted day", "the second day's load with a population shift (data generate --scenario)",
             _generate_second_day, requires=("monitoring",)),
    DemoStep("features 2", "features of the second day (job feature_engineering)",
             job_step("feature_engineering", lambda c: {"as_of": _day2(c)}), requires=("drifted day",)),
    DemoStep("inference 2", "score the second day (job batch_inference)",
             job_step("batch_inference", lambda c: {"scoring_date": _day2(c), "mode": "production"}),
             requires=("features 2",)),
    DemoStep("real-time", f"{REALTIME_REQUESTS} members of the second day scored one request each by the "
                          "local scoring server, which logs them (healthcare-mlops serve)",
             _realtime_traffic, requires=("inference 2",)),
    DemoStep("monitoring 2", "drift and alerts for the second day; a critical alert retrains "
                             "(job model_monitoring)",
             job_step("model_monitoring", lambda c: {"window_start": _day2(c), "window_end": _day2(c)}),
             requires=("inference 2",)),
    DemoStep("retrain", "the retrain the drifted day's critical alert started (job runs)", _retrain,
             requires=("monitoring 2",)),
    DemoStep("governance", "governance's decision on the latest version, and why", _governance,
             requires=("pipeline",)),
    DemoStep("reproduce", "rebuild the champion from its lineage and compare (job model_reproduction)",
             _reproduce_champion, requires=("monitoring 2",)),
    DemoStep("report", "what the loop produced (tables and registry)", _report, requires=("monitoring 2",)),
    DemoStep("summary", "every step's outcome", _summary),
    DemoStep("console", "the scoring server and the operations console", _console, _console_skip),
]


def run_demo(context: DemoContext, steps: list[DemoStep] | None = None) -> dict:
    """Run ``steps`` (default ``DEMO_STEPS``) in order; returns step name -> outcome as text
    ("ok", "skipped: why", "failed: why" ...)."""
    steps = DEMO_STEPS if steps is None else steps
    for number, step in enumerate(steps, start=1):
        context.say(f"\n== {number}/{len(steps)} {step.name}: {step.description}")
        unmet = [name for name in step.requires if context.done.get(name, Outcome("")).status != "ok"]
        reason = f"needs step {', '.join(unmet)}" if unmet else step.skip_if(context)
        outcome = Outcome("skipped", reason) if reason else (step.run(context) or OK)
        context.done[step.name] = outcome
        if outcome != OK:
            context.say(str(outcome))
    return {name: str(outcome) for name, outcome in context.done.items()}


def demo_context(home: str | os.PathLike | None, patients: int, seed: int = 42, no_app: bool = False,
                 first_day: dt.date | None = None, bundle: Bundle | None = None, echo: bool = True,
                 scenario: str = "smoker_surge") -> DemoContext:
    from healthcare_mlops.settings import resolve_home

    first = first_day or (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1))
    return DemoContext(home=resolve_home(home).resolve(), patients=patients, seed=seed, first_day=first,
                       second_day=first + dt.timedelta(days=1), no_app=no_app,
                       bundle=bundle or load_bundle(), echo=echo, scenario=scenario)
