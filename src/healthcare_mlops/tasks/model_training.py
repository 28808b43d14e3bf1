"""The model_training job: train on the features table, log to MLflow, register, alias ``challenger``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import pickle  # nosec B403  # the estimator is read back only from this product's own registry
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from healthcare_mlops.composition import Runtime
from healthcare_mlops.errors import UserError
from healthcare_mlops.explanations.contributions import TREE
from healthcare_mlops.features.definitions import FAIRNESS_GROUP_COLUMNS, MODEL_INPUT_COLUMNS
from healthcare_mlops.governance.group_evidence import GroupEvidence
from healthcare_mlops.governance.lineage import lineage_tags
from healthcare_mlops.modeling.artifacts import (CHALLENGER, EVALUATION_ARTIFACT_DIR, GROUP_EVIDENCE_FILE,
                                                 GROUP_METRICS_FILE, IMPORTANCE_METRIC_PREFIX,
                                                 PERFORMANCE_ESTIMATOR_FILE, REFERENCE_ARTIFACT_DIR,
                                                 REFERENCE_COUNTS_FILE, TRAINING_REFERENCE_FILE)
from healthcare_mlops.modeling.estimators import CANDIDATES
from healthcare_mlops.modeling.frame_hash import frame_hash
from healthcare_mlops.modeling.input_contract import typed_model_input
from healthcare_mlops.modeling.pyfunc import InsuranceRiskModel, input_signature, model_metadata
from healthcare_mlops.modeling.splits import DEFAULT_SALT
from healthcare_mlops.modeling.training import (IMPORTANCE_KEY, LEARNING_CURVE_FILE, TrainingResult,
                                                learning_curve_metrics, metric_key, train)
from healthcare_mlops.monitoring.drift import reference_counts
from healthcare_mlops.monitoring.evaluation import column_specs
from healthcare_mlops.monitoring.performance_estimate import MIN_REFERENCE_ROWS, fit_estimator, labelled_reference
from healthcare_mlops.runtime.lineage import (MODEL_PACKAGES, SELF_DISTRIBUTION, git_commit, git_dirty,
                                              installed_versions)
from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import ML_INSURANCE_FEATURES

# The input example logged with the model: synthetic members, never a member's row.
SYNTHETIC_INPUT_EXAMPLE = (
    {"age": 35, "bmi": 28.5, "children": 1, "smoker": False, "region": "northeast"},
    {"age": 52, "bmi": 33.0, "children": 2, "smoker": True, "region": "southeast"},
    {"age": 23, "bmi": 21.7, "children": 0, "smoker": False, "region": "southwest"},
)
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def load_training_frame(catalog, as_of: dt.date | None) -> tuple[pd.DataFrame, dict]:
    """The features of one as-of date (default: the latest) in ``catalog`` and the data version they came from."""
    if not catalog.exists(ML_INSURANCE_FEATURES):
        raise UserError(f"{catalog.fqn(ML_INSURANCE_FEATURES)} does not exist: run the feature_engineering job first")
    version = catalog.version(ML_INSURANCE_FEATURES)
    if as_of is None:
        dates = catalog.distinct_values(ML_INSURANCE_FEATURES, "as_of_date")
        if not dates:
            raise UserError(f"{catalog.fqn(ML_INSURANCE_FEATURES)} is empty")
        as_of = dates[-1]
    frame = catalog.read_arrow(ML_INSURANCE_FEATURES, [("as_of_date", "=", as_of)]).to_pandas(date_as_object=True)
    if frame.empty:
        raise UserError(f"no features for as-of date {as_of}")
    return frame, {"table": catalog.fqn(ML_INSURANCE_FEATURES), "as_of_date": str(as_of), "delta_version": version}


def training_lineage(settings: Settings, frame: pd.DataFrame, data_version: dict, params: dict,
                     inputs=MODEL_INPUT_COLUMNS) -> dict:
    """The lineage tags of a version trained on ``frame`` (governance/lineage.py)."""
    tables = {ML_INSURANCE_FEATURES: {**data_version, "location": settings.table_location(ML_INSURANCE_FEATURES)}}
    return lineage_tags(tables, installed_versions(), {**params, "as_of": data_version["as_of_date"]},
                        frame_hash(frame, inputs), git_commit(settings.variables), git_dirty(settings.variables))


def _input_example(inputs) -> pd.DataFrame:
    """Synthetic members typed as the model's contract says; extra inputs get a fixed value."""
    rows = pd.DataFrame(list(SYNTHETIC_INPUT_EXAMPLE))
    extra = tuple(c for c in inputs if c not in MODEL_INPUT_COLUMNS)
    return typed_model_input(rows.assign(**{c: "unknown" for c in extra}), extra)


def model_requirements(explained_by_tree: bool) -> list[str]:
    """The pip requirements logged with the model, stated instead of inferred.

    MLflow infers them by loading the model in a new process (seconds of every registration),
    and it listed this package itself, which is no PyPI package (it ships inside the model,
    ``code_paths``): an environment built from that list cannot be installed. The model
    imports the lineage's MODEL_PACKAGES, cloudpickle (the pyfunc's pickle) and, for a tree
    model's explanations, shap; tests/test_training.py checks MLflow's inference finds no other."""
    from importlib.metadata import version

    packages = [name for name in MODEL_PACKAGES if name != SELF_DISTRIBUTION]
    packages += ["cloudpickle", *(["shap"] if explained_by_tree else [])]
    return [f"{name}=={version(name)}" for name in packages]


def importance_metrics(importance_usd: dict) -> dict:
    """The global importance as run metrics (``importance_usd_<input>``), read by the console's Governance page."""
    return {f"{IMPORTANCE_METRIC_PREFIX}{name}": value for name, value in importance_usd.items()}


def _log_aggregates(result: TrainingResult, inputs=MODEL_INPUT_COLUMNS) -> None:
    """The monitoring reference and the group checks' evidence, reduced to counts and sums
    before they reach MLflow: no artifact holds member rows. The label-free MAE estimate's loss
    models are fitted here, on the held-out rows, and logged fitted."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _log_estimator(result, inputs, folder / PERFORMANCE_ESTIMATOR_FILE)
        (folder / TRAINING_REFERENCE_FILE).write_text(json.dumps(result.reference, indent=2))
        reference_counts(result.reference_sample, column_specs(result.reference)).to_parquet(
            folder / REFERENCE_COUNTS_FILE, index=False)
        GroupEvidence.from_rows(result.oof_evidence, FAIRNESS_GROUP_COLUMNS).to_frame().to_parquet(
            folder / GROUP_EVIDENCE_FILE, index=False)
        mlflow.log_artifact(str(folder / TRAINING_REFERENCE_FILE), REFERENCE_ARTIFACT_DIR)
        mlflow.log_artifact(str(folder / REFERENCE_COUNTS_FILE), REFERENCE_ARTIFACT_DIR)
        mlflow.log_artifact(str(folder / GROUP_EVIDENCE_FILE), EVALUATION_ARTIFACT_DIR)
    mlflow.log_dict(result.group_metrics, f"{EVALUATION_ARTIFACT_DIR}/{GROUP_METRICS_FILE}")


def _log_estimator(result: TrainingResult, inputs, path: Path) -> None:
    """The performance estimator of the held-out rows, unless they are too few (monitoring then says so)."""
    reference = labelled_reference(result.test_frame, list(inputs), result.actual_reference)
    if len(reference) < MIN_REFERENCE_ROWS:
        print(f"[training] no performance estimator: {len(reference)} held-out rows, it needs "
              f"{MIN_REFERENCE_ROWS}", flush=True)
        return
    path.write_bytes(pickle.dumps(fit_estimator(reference, tuple(inputs))))
    mlflow.log_artifact(str(path), REFERENCE_ARTIFACT_DIR)


# MLflow warns on every log_model that a Python-object model is serialised with CloudPickle
# (loading it runs code). That is this product's design: the model is loaded only from its own
# registry, with the same trust as the package's code (docs/architecture.md), so the notice is
# nothing a user of a job log can act on.
CLOUDPICKLE_NOTICE = "Passing a Python object as `python_model`"


class _WithoutCloudpickleNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(CLOUDPICKLE_NOTICE)


def quiet_cloudpickle_notice() -> None:
    """Drop MLflow's CloudPickle notice from ``mlflow.pyfunc``'s log (once per process)."""
    logger = logging.getLogger("mlflow.pyfunc")
    if not any(isinstance(f, _WithoutCloudpickleNotice) for f in logger.filters):
        logger.addFilter(_WithoutCloudpickleNotice())


def log_and_register(runtime: Runtime, result: TrainingResult, data_version: dict,
                     inputs=MODEL_INPUT_COLUMNS, commit: str | None = None, lineage: dict | None = None) -> dict:
    """Log params, metrics, artifacts and the pyfunc; register a version; alias it ``challenger``.

    ``lineage``: the ``governance.lineage`` tags, set on the run and on the version."""
    settings, client = runtime.settings, runtime.mlflow_client
    runtime.use_experiment()
    model = InsuranceRiskModel(result.pipeline, result.intervals, result.prediction_reference,
                               result.actual_reference,
                               extra_inputs=tuple(c for c in inputs if c not in MODEL_INPUT_COLUMNS),
                               explainer=result.explainer)
    example = _input_example(inputs)
    signature = input_signature(example, model.predict(None, example))
    tags = {"training_data_version": json.dumps(data_version), "git_commit": commit or "unknown",
            "model_inputs": ",".join(inputs), **(lineage or {})}
    with mlflow.start_run(run_name=f"train-{data_version['as_of_date']}", tags=tags) as run:
        mlflow.log_params(result.params)
        mlflow.log_metrics(result.metrics)
        mlflow.log_metrics(importance_metrics(result.reference[IMPORTANCE_KEY]))
        for name, values in result.cv_results.items():
            mlflow.log_metrics({f"candidate_{name}_{k}": v for k, v in values.items()})
        mlflow.log_metrics(learning_curve_metrics(result.learning_curve))
        mlflow.log_dict(result.learning_curve, f"{EVALUATION_ARTIFACT_DIR}/{LEARNING_CURVE_FILE}")
        for group in result.group_metrics:
            for metric in ("mae", "calibration_ratio", "n"):
                mlflow.log_metric(metric_key("oof", metric, group["group_column"], group["group_value"]),
                                  group[metric])
        _log_aggregates(result, inputs)
        quiet_cloudpickle_notice()
        info = mlflow.pyfunc.log_model(
            name="model", python_model=model, signature=signature, input_example=example,
            metadata=model_metadata(example), code_paths=[str(PACKAGE_DIR)],
            registered_model_name=settings.model_name,
            pip_requirements=model_requirements(result.explainer is not None and result.explainer.kind == TREE))
        version = str(info.registered_model_version)
        client.set_registered_model_alias(settings.model_name, CHALLENGER, version)
        for key, value in tags.items():
            client.set_model_version_tag(settings.model_name, version, key, value)
        client.set_model_version_tag(settings.model_name, version, "run_id", run.info.run_id)
    return {"run_id": run.info.run_id, "model_name": settings.model_name, "version": version,
            "candidate": result.candidate, "metrics": result.metrics}


def run(runtime: Runtime, as_of: dt.date | None = None, seed: int = 42,
        candidates: tuple[str, ...] | None = None) -> dict:
    """Train on one as-of date's features and register the winner as the challenger.

    ``candidates`` narrows the model search (default: every candidate in estimators.py).
    """
    settings = runtime.settings
    frame, data_version = load_training_frame(runtime.catalog, as_of)
    unknown = sorted(set(candidates or ()) - set(CANDIDATES))
    if unknown:
        raise UserError(f"unknown candidates: {', '.join(unknown)} (known: {', '.join(CANDIDATES)})")
    # Every core of the machine (a Databricks driver's too) runs the folds: see train().
    workers = len(os.sched_getaffinity(0))
    print(f"[training] {len(frame):,} feature rows; {workers} workers", flush=True)
    result = train(frame, seed=seed, candidates=tuple(candidates or CANDIDATES), salt=DEFAULT_SALT,
                   workers=workers, emit=lambda line: print(line, flush=True))
    summary = log_and_register(runtime, result, data_version, commit=git_commit(settings.variables),
                               lineage=training_lineage(settings, frame, data_version, result.params))
    print(f"registered {summary['model_name']} version {summary['version']} ({summary['candidate']}) "
          f"as '{CHALLENGER}'")
    for key in ("cv_mae", "cv_r2", "cv_high_risk_capture", "cv_interval_coverage", "cv_interval_width_ratio",
                "test_r2", "test_mae", "test_risk_score_mae", "test_high_risk_capture",
                "test_interval_coverage", "test_interval_width_ratio"):
        print(f"  {key}: {summary['metrics'][key]:.4f}")
    return summary
