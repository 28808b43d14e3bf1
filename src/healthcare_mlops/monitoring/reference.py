"""A registered model version's training reference, as monitoring reads it from MLflow.

Training logs two artifacts per version (modeling/artifacts.py names them): ``reference/
training_reference.json`` (deciles, shares, prediction deciles, feature importances: each
input's mean |contribution|, normalised; the composite drift score's weights) and
``reference/reference_counts.parquet`` (up to 100k training rows counted per monitored
column, rounded value and bin, ``drift.reference_counts``: the model inputs, sex, age band
and the out-of-fold prediction, each on its own; no member rows). The risk score's
reference quantiles travel inside the pyfunc (``prediction_reference`` /
``actual_reference``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.mlflow_setup import find_in_registry
from healthcare_mlops.settings import Settings
from healthcare_mlops.modeling.artifacts import (CHAMPION, REFERENCE_ARTIFACT_DIR, REFERENCE_COUNTS_FILE,
                                                 TRAINING_REFERENCE_FILE)
REFERENCE_KEYS = ("numeric", "categorical", "feature_importances", "prediction")


@dataclass
class ModelReference:
    model_name: str
    version: str
    run_id: str
    reference: dict
    counts: pd.DataFrame      # the training rows' counts per column, value and bin


def resolve_version(settings: Settings, client, alias: str) -> tuple[str, str] | None:
    """(version, run id) of the version behind ``alias``, or None when no version has it.

    The champion is the audited one (``governance/champion.py``), never a half-moved alias."""
    if alias == CHAMPION:
        from healthcare_mlops.governance.champion import audited_champion
        from healthcare_mlops.runtime.catalog import audit_log

        version = audited_champion(audit_log(settings))
        mv = None if version is None else find_in_registry(client.get_model_version, settings.model_name, version)
    else:
        mv = find_in_registry(client.get_model_version_by_alias, settings.model_name, alias)
    return None if mv is None else (str(mv.version), mv.run_id)


def check_reference(reference: dict, where: str) -> dict:
    missing = [k for k in REFERENCE_KEYS if not reference.get(k)]
    if missing:
        raise UserError(f"the training reference of {where} lacks {', '.join(missing)}")
    return reference


def load_reference(settings: Settings, alias: str = CHAMPION, version: str | None = None) -> ModelReference:
    """The training reference and reference counts of ``version`` (default: the version behind ``alias``)."""
    import mlflow

    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow

    client = configure_mlflow(settings)
    name = settings.model_name
    if version is None:
        resolved = resolve_version(settings, client, alias)
        if resolved is None:
            raise UserError(f"{name} has no {alias}: run the ml_training_pipeline job first")
        version, run_id = resolved
    else:
        mv = find_in_registry(client.get_model_version, name, str(version))
        if mv is None:
            raise UserError(f"{name} has no version {version}")
        run_id = mv.run_id
    where = f"{name} version {version}"
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
        reference = check_reference(json.load(handle), where)
    counts = pd.read_parquet(counts_path)
    if counts.empty:
        raise UserError(f"the reference counts of {where} are empty")
    return ModelReference(name, str(version), run_id, reference, counts)


def risk_references(settings: Settings, version: str) -> tuple[np.ndarray, np.ndarray]:
    """The risk score's reference quantiles of ``version``: (predictions, actual charges)."""
    import mlflow

    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow

    configure_mlflow(settings)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}").unwrap_python_model()
    except MlflowException as exc:
        raise UserError(f"{settings.model_name} version {version} does not load: {str(exc).splitlines()[0]}") from None
    return np.asarray(model.prediction_reference, float), np.asarray(model.actual_reference, float)
