"""Monitoring's reads of the model registry: which version an alias names, its training
reference artifacts and its risk-score reference quantiles (``monitoring/reference.py`` says
what they hold and checks them)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.modeling.artifacts import (CHAMPION, REFERENCE_ARTIFACT_DIR, REFERENCE_COUNTS_FILE,
                                                 TRAINING_REFERENCE_FILE)
from healthcare_mlops.monitoring.reference import ModelReference, model_reference
from healthcare_mlops.runtime.mlflow_setup import configure_mlflow, find_in_registry
from healthcare_mlops.settings import Settings


def resolve_version(settings: Settings, client, alias: str,
                    audited_champion: Callable[[], str | None]) -> tuple[str, str] | None:
    """(version, run id) of the version behind ``alias``, or None when no version has it.

    The champion is the audited one (``audited_champion()``, ``governance/champion.py``),
    never a half-moved alias."""
    if alias == CHAMPION:
        version = audited_champion()
        mv = None if version is None else find_in_registry(client.get_model_version, settings.model_name, version)
    else:
        mv = find_in_registry(client.get_model_version_by_alias, settings.model_name, alias)
    return None if mv is None else (str(mv.version), mv.run_id)


def load_reference(settings: Settings, version: str, run_id: str) -> ModelReference:
    """The training reference and reference counts of ``version``, logged by its run ``run_id``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    configure_mlflow(settings)
    where = f"{settings.model_name} version {version}"
    try:
        json_path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{REFERENCE_ARTIFACT_DIR}/{TRAINING_REFERENCE_FILE}")
        counts_path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{REFERENCE_ARTIFACT_DIR}/{REFERENCE_COUNTS_FILE}")
    except (MlflowException, OSError) as exc:
        raise UserError(f"{where} has no monitoring reference ({REFERENCE_ARTIFACT_DIR}/{TRAINING_REFERENCE_FILE}, "
                        f"{REFERENCE_COUNTS_FILE}; a version trained before the counts replaced the "
                        f"reference sample needs retraining): {str(exc).splitlines()[0]}") from None
    with open(json_path, encoding="utf-8") as handle:
        reference = json.load(handle)
    return model_reference(settings.model_name, version, run_id, reference, pd.read_parquet(counts_path))


def risk_references(settings: Settings, version: str) -> tuple[np.ndarray, np.ndarray]:
    """The risk score's reference quantiles of ``version``: (predictions, actual charges)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    configure_mlflow(settings)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}").unwrap_python_model()
    except MlflowException as exc:
        raise UserError(f"{settings.model_name} version {version} does not load: {str(exc).splitlines()[0]}") from None
    return np.asarray(model.prediction_reference, float), np.asarray(model.actual_reference, float)
