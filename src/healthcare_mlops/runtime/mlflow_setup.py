"""MLflow for the target: SQLite plus a local artifact folder locally, the workspace on Databricks."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from healthcare_mlops.settings import Settings

if TYPE_CHECKING:                        # mlflow is imported where it is used: the console's pages that
    from mlflow.tracking import MlflowClient    # only need the registry's fingerprint do not pay for it

DEFAULT_EXPERIMENT = "/Shared/healthcare-mlops/insurance_model"


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow's tracking and registry at the target and return a client for both."""
    import mlflow
    from mlflow.tracking import MlflowClient

    # A job's log is not a terminal: MLflow's per-download progress bars are three lines of
    # noise each time a model or an artifact is read (the operator can set it back to true).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if settings.is_local:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def experiment_name(settings: Settings) -> str:
    return str(settings.variables.get("experiment_name") or DEFAULT_EXPERIMENT)


def use_experiment(settings: Settings) -> str:
    """Create the experiment if needed (local artifacts under the home) and make it active."""
    import mlflow

    name = experiment_name(settings)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        artifact_location = settings.artifact_root if settings.is_local else None
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


# What a registry answers when the model, version or alias does not exist (SQLite and UC).
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


def find_in_registry(call, *args):
    """``call(*args)``, or None when what it asks for does not exist.

    Any other registry failure (no permission, the workspace unreachable) is raised: it
    must not read as "there is no champion"."""
    from mlflow.exceptions import MlflowException

    try:
        return call(*args)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND_CODES:
            raise
        return None


def registry_fingerprint(settings: Settings):
    """What changes when the registry changes, for caching: the local SQLite file's modification
    time (None before the first run created it); on a workspace ``()``: nothing to key on (the
    console keeps such results for a time window instead)."""
    if not settings.is_local:
        return ()
    try:
        return (settings.mlflow_dir / "mlflow.db").stat().st_mtime_ns
    except FileNotFoundError:
        return None
