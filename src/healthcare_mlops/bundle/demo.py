"""``healthcare-mlops demo``: the whole local loop, step by step, through the local runner.

The steps are the list ``DEMO_STEPS``, run in order; to extend the demo, add a
``DemoStep`` to it. A step can say when it is not wanted (``skip_if``: the console under
``--no-app``) and which earlier steps it needs (``requires``); a skipped step skips the
steps that need it, and a failing step stops the demo.
Jobs run through ``runner.run_job`` (trigger ``demo``), so every run is in ``job_runs``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from healthcare_mlops.bundle.definition import BUNDLE_ROOT_ENV, Bundle, load_bundle
from healthcare_mlops.bundle.runner import run_job
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import HOME_ENV

CONSOLE_ENTRY = "app/main.py"
CONSOLE_PORT, SCORING_PORT = 8501, 5001
SECOND_DAY_JOINERS = 1000


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
    done: dict = field(default_factory=dict)    # step name -> "ok" | "skipped: why"

    def say(self, text: str) -> None:
        if self.echo:
            print(text, flush=True)


@dataclass(frozen=True)
class DemoStep:
    name: str
    description: str
    run: Callable[[DemoContext], None]
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


def _console(context: DemoContext) -> None:
    """Start the scoring server and the console, print their addresses, serve until Ctrl-C."""
    base = [sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()", "--home", str(context.home)]
    env = {**os.environ, HOME_ENV: str(context.home), BUNDLE_ROOT_ENV: str(context.bundle.root),
           "HEALTHCARE_MLOPS_SCORING_URL": f"http://127.0.0.1:{SCORING_PORT}/invocations"}
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


def _report(context: DemoContext) -> None:
    """Say what the loop produced, from the tables and the registry, before the console opens."""
    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
    from healthcare_mlops.runtime.sql_engine import sql_engine
    from healthcare_mlops.settings import resolve_settings
    from healthcare_mlops.tables import JOB_RUNS, ML_MODEL_ALERTS, ML_PATIENT_PREDICTIONS

    settings = resolve_settings("local", context.home)
    engine = sql_engine(settings)
    days = engine.query(f"SELECT scoring_date, count(*) AS members, sum(CAST(high_risk AS INT)) AS critical, "  # nosec B608  # table names are constants of tables.py
                        f"sum(CAST(requires_review AS INT)) AS review FROM {ML_PATIENT_PREDICTIONS} "
                        "GROUP BY scoring_date ORDER BY scoring_date")
    for day in days.itertuples():
        context.say(f"scored {day.scoring_date}: {int(day.members)} members, {int(day.critical)} critical, "
                    f"{int(day.review)} flagged for review")
    alerts = engine.query(f"SELECT severity, type, retrain_run_id FROM {ML_MODEL_ALERTS} "  # nosec B608  # table names are constants of tables.py; the day is a bound parameter
                          "WHERE window_end = :day ORDER BY severity, type", {"day": context.second_day})
    context.say(f"alerts on the drifted day: {len(alerts)} "
                f"({', '.join(sorted(set(alerts['type'])))})" if len(alerts) else "alerts on the drifted day: none")
    for run_id in sorted(set(alerts["retrain_run_id"].dropna())):
        run = engine.query(f"SELECT status, error FROM {JOB_RUNS} WHERE run_id = :run AND task_key IS NULL",  # nosec B608  # table names are constants of tables.py; the run id is a bound parameter
                           {"run": int(run_id)})
        if len(run):
            cause = str(run["error"].iloc[0] or "").splitlines()[0] if run["status"].iloc[0] != "SUCCEEDED" else ""
            context.say(f"retrain (ml_training_pipeline run {run_id}): {run['status'].iloc[0]}"
                        + (f": {cause}" if cause else ""))
    client = configure_mlflow(settings)
    aliases = client.get_registered_model(settings.model_name).aliases or {}
    context.say("model: " + ", ".join(f"{alias} = version {version}" for alias, version in sorted(aliases.items())))
    for line in governance_outcome(settings):
        context.say(line)
    context.say(reproduction_outcome(settings))


def governance_outcome(settings) -> list[str]:
    """What governance decided about the latest challenger, and why, in a model owner's words."""
    from healthcare_mlops.governance.service import Governance
    from healthcare_mlops.identity import job_identity

    status = Governance(settings, job_identity(settings)).status()
    challenger, champion = status["challenger"], status["champion"]
    checks = status["checks"]
    if challenger is None or challenger == champion:
        if not champion:
            return ["governance: no champion"]
        compared = next((c for c in status["champion_checks"] if c["name"] == "champion_comparison"), None)
        why = f" ({compared['detail']})" if compared and compared.get("detail") else ""
        return [f"governance: version {champion} is the champion{why}"]
    if status["referred"]:
        lines = [f"governance: version {challenger} was referred to an approver, not refused: "
                 + "; ".join(f"{c['name']} {c['threshold']}: {c['detail']}" for c in status["referred"])]
        lines.append(f"  decide with: healthcare-mlops governance approve --version {challenger} --comment ... "
                     f"(or reject); version {champion} stays champion until then")
        return lines
    failed = [c for c in checks if c["hard"] and c["verdict"] == "fail"]
    if failed:
        return [f"governance: version {challenger} was refused; version {champion} stays champion: "
                + "; ".join(f"{c['name']} = {c['value']} (needs {c['threshold']})" for c in failed)]
    return [f"governance: version {challenger} is waiting for an approver (approval mode {status['approval_mode']})"]


def _reproduce_champion(context: DemoContext) -> None:
    """Rebuild the champion from its lineage (job model_reproduction); the report says the outcome,
    so a difference is shown there rather than stopping the demo."""
    run_job("model_reproduction", {"model_version": ""}, home=context.home, bundle=context.bundle, trigger="demo",
            echo=context.echo)


def reproduction_outcome(settings) -> str:
    """The champion's last reproduction, from its version tags."""
    from healthcare_mlops.governance.lineage import REPRODUCED_AT_TAG, RESULT_TAG
    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow

    client = configure_mlflow(settings)
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    result = champion.tags.get(RESULT_TAG)
    return (f"reproduce: version {champion.version} rebuilt from its lineage: {result} "
            f"(at {champion.tags.get(REPRODUCED_AT_TAG)}; healthcare-mlops governance reproduce --version "
            f"{champion.version})" if result else f"reproduce: version {champion.version} was not reproduced "
            "(see the model_reproduction run in healthcare-mlops jobs runs)")


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
    DemoStep("monitoring 2", "drift and alerts for the second day; a critical alert retrains "
                             "(job model_monitoring)",
             job_step("model_monitoring", lambda c: {"window_start": _day2(c), "window_end": _day2(c)}),
             requires=("inference 2",)),
    DemoStep("reproduce", "rebuild the champion from its lineage and compare (job model_reproduction)",
             _reproduce_champion, requires=("monitoring 2",)),
    DemoStep("report", "what the loop produced (tables and registry)", _report, requires=("monitoring 2",)),
    DemoStep("console", "the scoring server and the operations console", _console, _console_skip),
]


def run_demo(context: DemoContext, steps: list[DemoStep] | None = None) -> dict:
    """Run ``steps`` (default ``DEMO_STEPS``) in order; returns step name -> outcome."""
    steps = DEMO_STEPS if steps is None else steps
    for number, step in enumerate(steps, start=1):
        context.say(f"\n== {number}/{len(steps)} {step.name}: {step.description}")
        unmet = [name for name in step.requires if context.done.get(name) != "ok"]
        reason = f"needs step {', '.join(unmet)}" if unmet else step.skip_if(context)
        if reason:
            context.done[step.name] = f"skipped: {reason}"
            context.say(f"skipped: {reason}")
            continue
        step.run(context)
        context.done[step.name] = "ok"
    context.say("\n== demo summary")
    for name, outcome in context.done.items():
        context.say(f"  {name:12} {outcome}")
    context.say(f"\nlocal home: {context.home}\n"  # nosec B608  # a message to the user, not a query
                "next: healthcare-mlops jobs runs | healthcare-mlops jobs list | "
                "healthcare-mlops sql \"select * from job_runs\"")
    return context.done


def demo_context(home: str | os.PathLike | None, patients: int, seed: int = 42, no_app: bool = False,
                 first_day: dt.date | None = None, bundle: Bundle | None = None, echo: bool = True,
                 scenario: str = "smoker_surge") -> DemoContext:
    from healthcare_mlops.settings import resolve_home

    first = first_day or (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1))
    return DemoContext(home=resolve_home(home).resolve(), patients=patients, seed=seed, first_day=first,
                       second_day=first + dt.timedelta(days=1), no_app=no_app,
                       bundle=bundle or load_bundle(), echo=echo, scenario=scenario)
