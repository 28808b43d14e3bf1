"""Where the runtime's edges are built: the one place, with ``runtime/`` and ``settings.py``, that asks
whether a target is local or a Databricks workspace (docs/architecture.md).

The CLI, the console and the job tasks build their table catalog, job launcher, SQL
engine and identity here and hand them to code that never asks where it runs.
"""

from __future__ import annotations

from collections.abc import Callable
import re
from dataclasses import dataclass

from healthcare_mlops.bundle.launchers import DatabricksJobsLauncher, JobLauncher
from healthcare_mlops.emulator.launcher import LocalRunnerLauncher
from healthcare_mlops.errors import UserError
from healthcare_mlops.identity import Identity, local_identity, role_for
from healthcare_mlops.runtime.catalog import table_catalog
from healthcare_mlops.runtime.sql_engine import sql_engine
from healthcare_mlops.settings import LOCAL_TARGET, Settings

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")   # an actor worth looking up
catalog = table_catalog          # the target's TableCatalog (the decision is in runtime/catalog.py)
sql = sql_engine                 # the target's read-only SQL engine (runtime/sql_engine.py)


@dataclass(frozen=True)
class RuntimeFacts:
    """What the console and the CLI tell a person about the target's runtime, and what it offers."""

    where: str                  # "local" or "Databricks (prod)"
    data: str                   # the home folder, or catalog.schema
    jobs_run_by: str            # who executes the bundle's jobs
    task_history: bool          # job runs are the runner's job_runs table, one row per task too
    demo_command: str           # what builds the whole loop here ("" on a workspace)


def workspace_client():
    """databricks-sdk with the credentials of the environment (a job, an app, a CLI profile)."""
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()


def launcher(settings: Settings, bundle=None, client_factory=workspace_client) -> JobLauncher:
    """The job launcher of the target: the local runner, or Databricks Jobs."""
    if settings.is_local:
        return LocalRunnerLauncher(settings, bundle)
    return DatabricksJobsLauncher(client_factory, settings.target)


def champion_endpoint(settings: Settings):
    """What points real-time scoring at a new champion: the Model Serving endpoint on Databricks;
    None locally (``healthcare-mlops serve`` reads the champion alias when it starts)."""
    if settings.is_local:
        return None
    from functools import partial

    from healthcare_mlops.scoring.serving import deploy_champion_endpoint

    return partial(deploy_champion_endpoint, settings)


def role_check(settings: Settings, client_factory=workspace_client):
    """How model_governance confirms that a recorded decision's actor may take it: locally None
    (the recorded role is the record: the audit table is the developer's own files); on
    Databricks the actor's groups now, from the workspace's directory (``users.list``), give
    the role. An actor that is not a plain e-mail address is never looked up."""
    if settings.is_local:
        return None

    def may(user: str, action: str) -> bool:
        if not EMAIL.fullmatch(user):
            return False
        users = client_factory().users.list(filter=f'userName eq "{user}"', attributes="userName,groups")
        groups = [g.display for u in users if (u.user_name or "").lower() == user.lower()
                  for g in (u.groups or []) if g.display]
        return Identity(user, role_for(user, groups, settings)).may(action)

    return may


def cli_identity(settings: Settings, client_factory=workspace_client) -> Identity:
    """Who runs a CLI command: locally the configured user and role; against a workspace the
    signed-in Databricks user (``current_user.me``), with the role their groups give, so that
    the audit names the real person and an environment variable cannot raise the role."""
    if settings.is_local:
        return local_identity()
    from databricks.sdk.errors import DatabricksError

    try:
        me = client_factory().current_user.me()
    except (ValueError, DatabricksError) as exc:     # the SDK's "no credentials" is a ValueError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot tell who you are on {settings.target}: {first} (sign in with "
                        "`databricks auth login`, or set DATABRICKS_HOST and a token)") from exc
    groups = [g.display for g in (me.groups or []) if g.display]
    return Identity(user=me.user_name, role=role_for(me.user_name, groups, settings))


def require_this_machine(settings: Settings, what: str, instead: str) -> None:
    """Refuse ``what`` for a workspace target: it runs on this machine; ``instead`` says what serves there."""
    if not settings.is_local:
        raise UserError(f"{what} runs on this machine (target local); on {settings.target} {instead}")


def facts(settings: Settings) -> RuntimeFacts:
    """The target's runtime in words (see ``RuntimeFacts``)."""
    if settings.is_local:
        return RuntimeFacts("local", f"home {settings.home.resolve()}", "the local runner", True,
                            f"`{local_command(settings, 'demo')}`")
    return RuntimeFacts(f"Databricks ({settings.target})", f"{settings.catalog}.{settings.schema}", "Databricks Jobs",
                        False, "")


def local_command(settings: Settings, arguments: str) -> str:
    """``healthcare-mlops --home <this home> <arguments>``: a command a user can paste for this home."""
    import shlex

    return f"healthcare-mlops --home {shlex.quote(str(settings.home.resolve()))} {arguments}"


def command_hint(settings: Settings, arguments: str, job_key: str) -> str:
    """What to run for ``arguments``: locally the exact CLI command for this home, on a workspace the job."""
    return f"`{local_command(settings, arguments)}`" if settings.is_local else run_hint(settings, job_key)


def run_hint(settings: Settings, job_key: str, params: dict | None = None) -> str:
    """The command (locally) or the job (on Databricks) that produces what a page is missing."""
    if settings.is_local:        # the exact command for this home, so it works from any folder
        extra = "".join(f" --param {k}={v}" for k, v in (params or {}).items())
        return f"`{local_command(settings, f'jobs run {job_key}{extra}')}`"
    return (f"the `{job_key}` job (Jobs page, Run now; or `databricks bundle run -t {settings.target} "
            f"{job_key}`)")



# -- the console ----------------------------------------------------------------------------------
TARGET_ENV = "HEALTHCARE_MLOPS_TARGET"
APP_NAME_ENV = "DATABRICKS_APP_NAME"                 # set by Databricks Apps


def console_target(environ: dict) -> str:
    """$HEALTHCARE_MLOPS_TARGET, else the target whose app is $DATABRICKS_APP_NAME, else local."""
    from healthcare_mlops.bundle.definition import load_bundle
    from healthcare_mlops.bundle.interpolation import target_for_app_name

    explicit = environ.get(TARGET_ENV)
    if explicit:
        return explicit
    app_name = environ.get(APP_NAME_ENV)
    if not app_name:
        return LOCAL_TARGET
    target = target_for_app_name(load_bundle(), app_name)
    if target is None:
        raise UserError(f"the app '{app_name}' is not the console of any bundle target "
                        f"(databricks.yml app_name); set {TARGET_ENV} in app.yaml")
    return target


def console_identity(settings: Settings, environ: dict, forwarded: Callable[[], Identity],
                     signed_in: Callable[[], Identity]) -> Identity:
    """Who uses the console: locally the configured user and role; inside Databricks Apps
    (``$DATABRICKS_APP_NAME``) ``forwarded()``, the user the Apps proxy puts in the request's
    headers; against a workspace target anywhere else ``signed_in()``, the user of the Databricks
    CLI's auth with the role of their groups (``cli_identity``). Off Databricks nobody vouches for
    a request's headers, and an environment variable must not choose the role."""
    if settings.is_local:
        return local_identity()
    if environ.get(APP_NAME_ENV):
        return forwarded()
    return signed_in()


def console_sql_engine(settings: Settings) -> type:
    """The console's SQL engine class: DuckDB over the local tables, or the SQL warehouse."""
    from healthcare_mlops.runtime.console_sql import LocalConsoleEngine, WarehouseConsoleEngine

    return LocalConsoleEngine if settings.is_local else WarehouseConsoleEngine


def realtime_scorer(settings: Settings, environ: dict, load_champion, client_factory=workspace_client):
    """How the Score page scores: the serving endpoint, a local scoring server, or the champion in-process."""
    from healthcare_mlops.scoring import realtime

    if not settings.is_local:
        from healthcare_mlops.scoring.serving import endpoint_name

        from healthcare_mlops.runtime.serving_endpoint_scorer import ServingEndpointScorer

        name = (environ.get(realtime.SERVING_ENDPOINT_ENV) or endpoint_name(settings) or "").strip()
        return ServingEndpointScorer(client_factory, name)
    url = environ.get(realtime.SCORING_URL_ENV)
    if url:
        return realtime.ScoringServerScorer(url)
    from mlflow.exceptions import MlflowException      # what a loaded pyfunc raises when it refuses

    return realtime.InProcessScorer(load_champion, (MlflowException,))
