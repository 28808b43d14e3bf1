"""Monitoring's reads of the model registry: which version an alias names, its training
reference artifacts and its risk-score reference quantiles (``monitoring/reference.py`` says
what they hold and checks them)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from healthcare_mlops.errors import UserError
from healthcare_mlops.modeling.artifacts import (CHAMPION, PERFORMANCE_ESTIMATOR_FILE, REFERENCE_ARTIFACT_DIR,
                                                 REFERENCE_COUNTS_FILE, TRAINING_REFERENCE_FILE)
from healthcare_mlops.monitoring.performance_estimate import PerformanceEstimator
from healthcare_mlops.monitoring.reference import ModelReference, model_reference
from healthcare_mlops.runtime.model_registry import ModelRegistry


def resolve_version(registry: ModelRegistry, alias: str,
                    audited_champion: Callable[[], str | None]) -> tuple[str, str] | None:
    """(version, run id) of the version behind ``alias``, or None when no version has it.

    The champion is the audited one (``audited_champion()``, ``governance/champion.py``),
    never a half-moved alias."""
    if alias == CHAMPION:
        version = audited_champion()
        mv = None if version is None else registry.version(version)
    else:
        mv = registry.aliased(alias)
    return None if mv is None else (str(mv.version), mv.run_id)


def load_reference(registry: ModelRegistry, version: str, run_id: str) -> ModelReference:
    """The training reference and reference counts of ``version``, logged by its run ``run_id``."""
    from mlflow.exceptions import MlflowException

    where = f"{registry.model_name} version {version}"
    try:
        reference = registry.run_json(run_id, f"{REFERENCE_ARTIFACT_DIR}/{TRAINING_REFERENCE_FILE}")
        counts = registry.run_parquet(run_id, f"{REFERENCE_ARTIFACT_DIR}/{REFERENCE_COUNTS_FILE}")
    except (MlflowException, OSError) as exc:
        raise UserError(f"{where} has no monitoring reference ({REFERENCE_ARTIFACT_DIR}/{TRAINING_REFERENCE_FILE}, "
                        f"{REFERENCE_COUNTS_FILE}; a version trained before the counts replaced the "
                        f"reference sample needs retraining): {str(exc).splitlines()[0]}") from None
    return model_reference(registry.model_name, version, run_id, reference, counts)


def risk_references(registry: ModelRegistry, version: str) -> tuple[np.ndarray, np.ndarray]:
    """The risk score's reference quantiles of ``version``: (predictions, actual charges)."""
    from mlflow.exceptions import MlflowException

    try:
        model = registry.load(version).unwrap_python_model()
    except MlflowException as exc:
        raise UserError(f"{registry.model_name} version {version} does not load: "
                        f"{str(exc).splitlines()[0]}") from None
    return np.asarray(model.prediction_reference, float), np.asarray(model.actual_reference, float)


def performance_estimator(registry: ModelRegistry, version: str) -> tuple[PerformanceEstimator | None, str]:
    """(``version``'s performance estimator, ""), or (None, why there is none): a version trained
    before training logged it, or on too few held-out rows, has none, and monitoring then says so
    instead of failing."""
    from mlflow.exceptions import MlflowException

    mv = registry.version(version)
    if mv is None:
        return None, f"version {version} is not registered"
    try:
        return registry.run_pickle(mv.run_id, f"{REFERENCE_ARTIFACT_DIR}/{PERFORMANCE_ESTIMATOR_FILE}"), ""
    except (MlflowException, OSError) as exc:
        return None, (f"version {version} has no performance estimator ({REFERENCE_ARTIFACT_DIR}/"
                      f"{PERFORMANCE_ESTIMATOR_FILE}; trained before it was logged, or on too few held-out "
                      f"rows): {str(exc).splitlines()[0]}")
