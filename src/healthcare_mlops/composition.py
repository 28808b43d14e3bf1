"""The composition root: the one place, with ``runtime/`` and ``settings.py``, that asks whether a
target is local or a Databricks workspace (docs/architecture.md).

``build_runtime(settings)`` builds one ``Runtime`` per process: the table catalog, the Spark
session, the model registry adapter (MLflow's process-wide URIs set once, here), the job
launcher, the workspace client, who acts, the clock and the typed parameters built once from
the bundle's variables. Each task receives it (``tasks/entrypoint.py``); the CLI and the console
build theirs here too, and hand the pieces to a core that never asks where it runs.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from healthcare_mlops.bundle.launchers import DatabricksJobsLauncher, JobLauncher
from healthcare_mlops.emulator.launcher import LocalRunnerLauncher
from healthcare_mlops.errors import UserError
from healthcare_mlops.governance.audit import AuditLog
from healthcare_mlops.governance.thresholds import GovernanceThresholds
from healthcare_mlops.parameters import governance_thresholds
from healthcare_mlops.identity import Identity, RoleMembers, job_identity, local_identity, role_for
from healthcare_mlops.runtime.catalog import arrow_member_load, audit_log, table_catalog
from healthcare_mlops.runtime.sql_engine import sql_engine
from healthcare_mlops.settings import LOCAL_TARGET, Settings

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")   # an actor worth looking up
catalog = table_catalog          # the target's TableCatalog (the decision is in runtime/catalog.py)
sql = sql_engine                 # the target's read-only SQL engine (runtime/sql_engine.py)
# The member-id hash's key: the secret's name in the bundle's scope; a laptop's own or default key.
MEMBER_KEY_SECRET_NAME = "member-key"
MEMBER_KEY_SECRET_ENV = "HEALTHCARE_MLOPS_MEMBER_KEY_SECRET"
LOCAL_MEMBER_KEY_SECRET = "healthcare-mlops-local"


@dataclass(frozen=True)
class RuntimeFacts:
    """What the console and the CLI tell a person about the target's runtime, and what it offers."""

    where: str                  # "local" or "Databricks (prod)"
    data: str                   # the home folder, or catalog.schema
    jobs_run_by: str            # who executes the bundle's jobs
    task_history: bool          # job runs are the runner's job_runs table, one row per task too
    demo_command: str           # what builds the whole loop here ("" on a workspace)


def workspace_client():
    """databricks-sdk with the credentials of the environment (a job, an app, a CLI profile).

    The one place a ``WorkspaceClient`` is built; a ``Runtime`` keeps the one it made."""
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class Runtime:
    """Everything a task, a command or a page reaches the world through, built once per process.

    Each piece is made on first use and kept: a task that never reads a table starts no Spark
    session, one that never touches the registry does not configure MLflow."""

    settings: Settings
    identify: Callable[[Runtime], Identity]    # who acts: a job, the CLI's user (``build_runtime``)
    clock: Callable[[], dt.datetime] = utc_now
    client_factory: Callable[[], Any] = field(default=workspace_client, repr=False)
    loads_members_in_arrow: Callable[[Settings], bool] = field(default=arrow_member_load, repr=False)

    @cached_property
    def identity(self) -> Identity:
        return self.identify(self)

    @cached_property
    def spark(self):
        """The Spark session (local, tuned for a small machine; the cluster's on Databricks)."""
        from healthcare_mlops.runtime.spark_session import get_spark

        return get_spark(self.settings)

    @cached_property
    def catalog(self):
        """The table catalog without a session of its own: delta-rs locally (Spark started only for a
        Spark read), the SQL warehouse on Databricks; what governance and the console read through."""
        return table_catalog(self.settings)

    @cached_property
    def spark_catalog(self):
        """The table catalog on this process's Spark session (the jobs that transform with Spark)."""
        return table_catalog(self.settings, self.spark)

    @cached_property
    def member_load_in_arrow(self) -> bool:
        """Whether a CSV member load runs in Arrow and DuckDB (a laptop) or in Spark (Databricks)."""
        return self.loads_members_in_arrow(self.settings)

    @cached_property
    def mlflow_client(self):
        """MLflow's client, after the process-wide tracking and registry URIs were set (here only)."""
        from healthcare_mlops.runtime.mlflow_setup import configure_mlflow

        return configure_mlflow(self.settings)

    def use_experiment(self) -> str:
        """The target's experiment made active (created when missing), after MLflow is configured."""
        from healthcare_mlops.runtime.mlflow_setup import use_experiment

        _ = self.mlflow_client
        return use_experiment(self.settings)

    @cached_property
    def registry(self):
        """The registered model's adapter (runtime/model_registry.py)."""
        from healthcare_mlops.runtime.model_registry import model_registry

        return model_registry(self.settings, lambda: self.mlflow_client)

    @cached_property
    def workspace(self):
        """The Databricks workspace client (built once; never on a local target)."""
        return self.client_factory()

    def member_key_secret(self) -> str:
        """The key of the member-id hash. On a workspace the secret ``member-key`` of the scope the
        bundle variable ``member_key_secret_scope`` names (a job parameter would show it to every
        viewer of the job); locally $HEALTHCARE_MLOPS_MEMBER_KEY_SECRET or a fixed laptop key."""
        if self.settings.is_local:
            return os.environ.get(MEMBER_KEY_SECRET_ENV) or LOCAL_MEMBER_KEY_SECRET
        from healthcare_mlops.runtime.workspace_secrets import read_secret

        return read_secret(self.workspace, *self.member_key_reference())

    def member_key_reference(self) -> tuple[str, str] | None:
        """Where the member-id hash's key is kept, (scope, key), for Spark to read it with SQL's
        ``secret()`` on a workspace; None locally, where no secret service exists."""
        if self.settings.is_local:
            return None
        scope = str(self.settings.variables.get("member_key_secret_scope") or "").strip()
        if not scope:
            raise UserError("the bundle variable member_key_secret_scope is empty: a file with member ids "
                            f"needs the scope that holds the secret '{MEMBER_KEY_SECRET_NAME}'")
        return scope, MEMBER_KEY_SECRET_NAME

    @cached_property
    def launcher(self) -> JobLauncher:
        return launcher(self.settings, client_factory=lambda: self.workspace)

    # -- typed parameters, built once from the bundle's variables ---------------------------
    @cached_property
    def thresholds(self) -> GovernanceThresholds:
        return governance_thresholds(self.settings.variables)

    @cached_property
    def approval_mode(self) -> str:
        return self.audit_log.approval_mode

    @cached_property
    def role_members(self) -> RoleMembers:
        return RoleMembers.from_variables(self.settings.variables)

    @cached_property
    def audit_log(self) -> AuditLog:
        return audit_log(self.settings, self.catalog)

    # -- what governance is handed -----------------------------------------------------------
    def governance(self, identity: Identity | None = None, check_roles: bool = False):
        """Governance of the target's model on behalf of ``identity`` (default: this runtime's), the
        serving endpoint following the champion on Databricks; ``check_roles``: a recorded
        decision counts only when its actor's groups still give the role (``role_check``)."""
        from healthcare_mlops.governance.service import Governance

        return Governance(self.registry, self.audit_log, self.catalog, identity or self.identity, self.thresholds,
                          champion_endpoint(self.settings),
                          role_check(self.settings, lambda: self.workspace) if check_roles else None)

    def reproduction_sources(self):
        """What ``governance/reproduce.py`` reads and writes through."""
        from healthcare_mlops.governance.reproduce import Sources
        from healthcare_mlops.runtime.lineage import git_commit, installed_versions

        return Sources(self.catalog, self.registry, self.audit_log, self.thresholds, installed_versions,
                       git_commit(self.settings.variables))


def job_runtime_identity(runtime: Runtime) -> Identity:
    return job_identity(runtime.settings.target)


def cli_runtime_identity(runtime: Runtime) -> Identity:
    return cli_identity(runtime.settings, lambda: runtime.workspace)


def build_runtime(settings: Settings, identify: Callable[[Runtime], Identity] = job_runtime_identity,
                  **parts) -> Runtime:
    """The process's ``Runtime``: a job acts as ``job:<target>`` unless ``identify`` says who acts."""
    return Runtime(settings, identify, **parts)


def task_runtime(params: dict) -> Runtime:
    """A job task's ``Runtime``, from the task parameters (``settings.task_settings``)."""
    from healthcare_mlops.settings import task_settings

    return build_runtime(task_settings(params))


def cli_runtime(settings: Settings) -> Runtime:
    """A CLI command's ``Runtime``: it acts as the signed-in user (``cli_identity``), asked when first needed."""
    return build_runtime(settings, cli_runtime_identity)


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

    from healthcare_mlops.runtime.serving_endpoint import deploy_champion_endpoint

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
        return Identity(user, role_for(user, groups, RoleMembers.from_variables(settings.variables))).may(action)

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
    return Identity(user=me.user_name, role=role_for(me.user_name, groups,
                                                     RoleMembers.from_variables(settings.variables)))


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
        from healthcare_mlops.runtime.serving_endpoint import endpoint_name

        from healthcare_mlops.runtime.serving_endpoint_scorer import ServingEndpointScorer

        name = (environ.get(realtime.SERVING_ENDPOINT_ENV) or endpoint_name(settings) or "").strip()
        return ServingEndpointScorer(client_factory, name)
    url = environ.get(realtime.SCORING_URL_ENV)
    if url:
        return realtime.ScoringServerScorer(url)
    from mlflow.exceptions import MlflowException      # what a loaded pyfunc raises when it refuses

    return realtime.InProcessScorer(load_champion, (MlflowException,))
