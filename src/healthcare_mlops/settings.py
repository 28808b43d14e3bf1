"""Resolved settings for one target: where tables, the model and MLflow live.

``local`` is the laptop runtime (embedded default). ``dev``, ``staging`` and ``prod``
are the bundle's Databricks targets: their catalog, schema and options are read from
``databricks.yml`` so that nothing about a workspace is written twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.bundle.local_target import LOCAL_OVERRIDES, LOCAL_TARGET
from healthcare_mlops.errors import UserError
from healthcare_mlops.tables import TableRegistry

HOME_ENV = "HEALTHCARE_MLOPS_HOME"
DEFAULT_HOME = ".lakehouse"
MODEL_BASENAME = "insurance_model"
REQUIRED_TASK_PARAMETERS = ("target", "catalog", "schema")     # every job task receives these


@dataclass(frozen=True)
class Settings:
    """Everything a job, the CLI or the console needs to find its data and model."""

    target: str
    catalog: str
    schema: str
    home: Path
    variables: dict = field(default_factory=dict)

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
        return f"{self.catalog}.{self.schema}.{self.variables.get('model_name') or MODEL_BASENAME}"

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


def resolve_home(home: str | os.PathLike | None) -> Path:
    """The local runtime's root: the argument, else $HEALTHCARE_MLOPS_HOME, else ./.lakehouse."""
    return Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME)


def resolve_settings(target: str = LOCAL_TARGET, home: str | os.PathLike | None = None,
                     overrides: dict | None = None) -> Settings:
    """Settings for ``target``: bundle variable defaults, the target's overrides, then ``overrides``.

    Job entry points pass their task parameters as ``overrides`` so that catalog, schema
    and thresholds always come from the bundle, never from code.
    """
    bundle = load_bundle()
    if target == LOCAL_TARGET:
        variables = {**bundle.variable_defaults(), **LOCAL_OVERRIDES}
    elif target in bundle.target_names():
        variables = bundle.target_variables(target)
    else:
        known = ", ".join([LOCAL_TARGET, *bundle.target_names()])
        raise UserError(f"unknown target '{target}' (known: {known})")
    variables.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return Settings(target=target, catalog=str(variables["catalog"]),
                    schema=str(variables["schema"]), home=resolve_home(home),
                    variables=variables)


def task_settings(params: dict[str, str]) -> Settings:
    """Settings built only from a job task's parameters (the bundle is not read at run time).

    Locally the runner substitutes ``local`` for the target and the home comes from
    $HEALTHCARE_MLOPS_HOME."""
    target = params["target"]
    home = resolve_home(os.environ.get(HOME_ENV)) if target == LOCAL_TARGET else resolve_home(None)
    return Settings(target=target, catalog=params["catalog"], schema=params["schema"], home=home,
                    variables=dict(params))


def numbers_from_variables(cls, variables: dict, kind: str):
    """The frozen dataclass ``cls`` with each field read from the bundle variable of its name.

    Every field is a threshold: required, and a number (``int`` fields accept "30" and
    "30.0", as a bundle may pass either). ``kind`` names the group in errors.
    """
    from dataclasses import fields

    values = {}
    for spec in fields(cls):
        raw = variables.get(spec.name)
        if raw is None or raw == "":
            raise UserError(f"{kind} threshold '{spec.name}' is not set (a bundle variable)")
        try:
            values[spec.name] = int(float(raw)) if spec.type in (int, "int") else float(raw)
        except (TypeError, ValueError):
            raise UserError(f"{kind} threshold '{spec.name}' must be a number, not {raw!r}") from None
    return cls(**values)
