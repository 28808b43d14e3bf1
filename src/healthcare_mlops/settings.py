"""Resolved settings for one target: where tables, the model and MLflow live.

``local`` is the laptop runtime (embedded default). ``dev``, ``staging`` and ``prod``
are the bundle's Databricks targets: their catalog, schema and options are read from
``databricks.yml`` so that nothing about a workspace is written twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from healthcare_mlops.bundle import naming
from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.bundle.local_target import LOCAL_OVERRIDES, LOCAL_TARGET
from healthcare_mlops.errors import UserError
from healthcare_mlops.tables import TableRegistry

HOME_ENV = "HEALTHCARE_MLOPS_HOME"
DEFAULT_HOME = ".lakehouse"
MODEL_BASENAME = "insurance_model"
# The registered model's deployed name (without catalog and schema), when a consumer is told it.
MODEL_NAME_ENV = "HEALTHCARE_MLOPS_MODEL_NAME"
# The console's id of the model_governance job (app.yaml); its --model_name is the deployed name.
GOVERNANCE_JOB_ID_ENV = "HEALTHCARE_MLOPS_JOB_ID_MODEL_GOVERNANCE"
MODEL_NAME_FLAG = "--model_name"
ENDPOINT_NAME_FLAG = "--serving_endpoint_name"
REQUIRED_TASK_PARAMETERS = ("target", "catalog", "schema")     # every job task receives these


@dataclass(frozen=True)
class Settings:
    """Everything a job, the CLI or the console needs to find its data and model."""

    target: str
    catalog: str
    schema: str
    home: Path
    variables: dict = field(default_factory=dict)
    # True when ``variables["model_name"]`` is the bundle's name in a development-mode target:
    # the deployed model then carries its deployer's ``dev_<user>_`` prefix, which
    # ``resolve_settings`` asks the workspace for once and keeps in ``deployed_model_name``, so
    # reading ``model_name`` never calls out. Jobs get the deployed name as a task parameter.
    development_model: bool = False
    deployed_model_name: str | None = None

    @property
    def is_local(self) -> bool:
        return self.target == LOCAL_TARGET

    @property
    def executors_share_filesystem(self) -> bool:
        """Whether Spark's workers see the driver's files (local[*]), so a model folder can be
        read in place instead of being shipped to them."""
        return self.is_local

    @property
    def tables(self) -> TableRegistry:
        return TableRegistry(self.catalog, self.schema)

    @property
    def model_name(self) -> str:
        """``<catalog>.<schema>.<name>`` of the registered model as deployed for this target."""
        if self.development_model and not self.deployed_model_name:
            raise UserError(f"the {self.target} target's deployed model name was not resolved: build these "
                            "settings with resolve_settings(..., resolve_model_name=True)")
        name = self.deployed_model_name or str(self.variables.get("model_name") or MODEL_BASENAME)
        return f"{self.catalog}.{self.schema}.{name}"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def tracking_uri(self) -> str:
        if self.is_local:
            return f"sqlite:///{(self.mlflow_dir / 'mlflow.db').resolve()}"
        return "databricks"

    @property
    def registry_uri(self) -> str:
        return self.tracking_uri if self.is_local else "databricks-uc"

    @property
    def artifact_root(self) -> str:
        return (self.mlflow_dir / "artifacts").resolve().as_uri()

    def table_location(self, logical_name: str) -> str:
        """Where a table lives: a Delta folder locally, a Unity Catalog name on Databricks."""
        if self.is_local:
            return str(self.home.resolve() / "tables" / self.catalog / self.schema / logical_name)
        return self.tables.fqn(logical_name)

    def staging_dir(self, source: Path) -> Path:
        """Where ingest stages ``source`` as Parquet for Spark: a folder every Spark worker reads.

        Locally under the home; on Databricks beside the source in its volume (the driver's
        own disk is not the workers')."""
        if self.is_local:
            return self.home / "staging"
        return Path(source).parent / ".healthcare-mlops-staging"

    def as_dict(self) -> dict:
        """The settings as ``healthcare-mlops info --format json`` prints them."""
        return {
            "target": self.target,
            "catalog": self.catalog,
            "schema": self.schema,
            "home": str(self.home.resolve()),
            "tracking_uri": self.tracking_uri,
            "registry_uri": self.registry_uri,
            "model_name": self.model_name,
            "tables": {name: self.table_location(name) for name in self.tables.names()},
        }


def _workspace_client():
    """databricks-sdk's client, authenticated from the environment (a user's profile, an app, a job)."""
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()


def parameter_of_job(client, job_id: int, flag: str) -> str | None:
    """The value a deployed job passes to its tasks after ``flag`` (the bundle put the deployed value there)."""
    job = client.jobs.get(job_id=job_id)
    for task in (job.settings.tasks if job.settings else None) or []:
        params = list((task.spark_python_task.parameters if task.spark_python_task else None) or [])
        if flag in params[:-1]:
            return params[params.index(flag) + 1]
    return None


def development_endpoint_name(name: str) -> str:
    """A per-user endpoint name (``${workspace.current_user...}`` in it) as the deploy resolved it.

    The console (not its deployer) reads the ``--serving_endpoint_name`` of the deployed
    ``model_governance`` job; a developer's own CLI resolves the name for the signed-in user.
    """
    client = _workspace_client()
    job_id = os.environ.get(GOVERNANCE_JOB_ID_ENV, "")
    if job_id.isdigit():
        deployed = parameter_of_job(client, int(job_id), ENDPOINT_NAME_FLAG)
        if deployed is None:
            raise UserError(f"the model_governance job ({GOVERNANCE_JOB_ID_ENV}={job_id}) "
                            f"passes no {ENDPOINT_NAME_FLAG}")
        return deployed
    return naming.resolve_current_user(name, client.current_user.me().user_name)


_development_names: dict = {}


def development_model_name(name: str) -> str:
    """The deployed name of model ``name`` in a development deployment, found the same way by every consumer.

    In order: $HEALTHCARE_MLOPS_MODEL_NAME (said explicitly); the ``--model_name`` of the
    deployed ``model_governance`` job when its id is known (the console: app.yaml maps it);
    else the current user's ``dev_<short name>_`` prefix (the CLI run by the developer who
    deployed). Resolved once per process.
    """
    if os.environ.get(MODEL_NAME_ENV):
        return os.environ[MODEL_NAME_ENV]
    job_id = os.environ.get(GOVERNANCE_JOB_ID_ENV, "")
    key = (name, job_id)
    if key not in _development_names:
        client = _workspace_client()
        if job_id.isdigit():
            deployed = parameter_of_job(client, int(job_id), MODEL_NAME_FLAG)
            if deployed is None:      # never guess: the app's own identity is not the deployer
                raise UserError(f"the model_governance job ({GOVERNANCE_JOB_ID_ENV}={job_id}) passes no "
                                f"{MODEL_NAME_FLAG}; set {MODEL_NAME_ENV} to the deployed model's name")
        else:
            deployed = naming.deployed_model_name(name, naming.DEVELOPMENT, client.current_user.me().user_name)
        _development_names[key] = deployed
    return _development_names[key]


def resolve_home(home: str | os.PathLike | None) -> Path:
    """The local runtime's root: the argument, else $HEALTHCARE_MLOPS_HOME, else ./.lakehouse."""
    return Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME)


def resolve_settings(target: str = LOCAL_TARGET, home: str | os.PathLike | None = None,
                     overrides: dict | None = None, resolve_model_name: bool = True) -> Settings:
    """Settings for ``target``: bundle variable defaults, the target's overrides, then ``overrides``.

    Job entry points pass their task parameters as ``overrides`` so that catalog, schema
    and thresholds always come from the bundle, never from code. A development-mode target's
    deployed model name is resolved here (``development_model_name``), once; a caller that
    must not reach the workspace yet passes ``resolve_model_name=False`` and cannot read it.
    """
    bundle = load_bundle()
    if target == LOCAL_TARGET:
        variables = {**bundle.variable_defaults(), **LOCAL_OVERRIDES}
    elif target in bundle.target_names():
        variables = bundle.target_variables(target)
    else:
        known = ", ".join([LOCAL_TARGET, *bundle.target_names()])
        raise UserError(f"unknown target '{target}' (known: {known})")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    variables.update(overrides)
    development = (target != LOCAL_TARGET and bundle.target(target).get("mode") == naming.DEVELOPMENT
                   and "model_name" not in overrides)
    # the one workspace call settings may need, made here at the edge rather than on each read
    deployed = (development_model_name(str(variables.get("model_name") or MODEL_BASENAME))
                if development and resolve_model_name else None)
    return Settings(target=target, catalog=str(variables["catalog"]),
                    schema=str(variables["schema"]), home=resolve_home(home),
                    variables=variables, development_model=development, deployed_model_name=deployed)


def task_settings(params: dict[str, str]) -> Settings:
    """Settings built only from a job task's parameters (the bundle is not read at run time).

    Locally the runner substitutes ``local`` for the target and the home comes from
    $HEALTHCARE_MLOPS_HOME."""
    target = params["target"]
    home = resolve_home(os.environ.get(HOME_ENV)) if target == LOCAL_TARGET else resolve_home(None)
    return Settings(target=target, catalog=params["catalog"], schema=params["schema"], home=home,
                    variables=dict(params))
