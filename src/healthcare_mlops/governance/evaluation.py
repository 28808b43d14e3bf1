"""Gather a registered version's evidence for the checks.

Headline metrics: the version's held-out test rows are read again from the features table
at the Delta version its lineage records (time travel) and picked by the member-hash split
with the run's recorded salt; the model is loaded from the registry and re-scores them.
Nothing is trusted from the training run's logged numbers, and no member rows are stored
in MLflow. The champion is scored on the same rows (the comparison and the floors).

Group checks: the run's out-of-fold evidence artifact: every training member's actual
and OOF predicted charges reduced to bootstrap sums per group (``group_evidence.py``; no
member rows). OOF predictions come from the fold models, which the registry does not
hold, so this is the one piece read from the run. Whatever fails is recorded as the
reason; the check fails.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model

from healthcare_mlops.features.definitions import LABEL_COLUMN
from healthcare_mlops.governance.checks import Evidence
from healthcare_mlops.modeling import metrics as m
from healthcare_mlops.governance.group_evidence import GroupEvidence
from healthcare_mlops.modeling.artifacts import EVALUATION_ARTIFACT_DIR, GROUP_EVIDENCE_FILE
from healthcare_mlops.modeling.pyfunc import model_inputs as declared_inputs
from healthcare_mlops.modeling.splits import DEFAULT_SALT, held_out_mask
from healthcare_mlops.runtime.catalog import table_catalog
from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import ML_INSURANCE_FEATURES


def model_uri(model_name: str, version: str) -> str:
    return f"models:/{model_name}/{version}"


def load_oof_evidence(run_id: str) -> GroupEvidence:
    """The training run's out-of-fold evidence: bootstrap sums per group."""
    path = mlflow.artifacts.download_artifacts(run_id=run_id,
                                               artifact_path=f"{EVALUATION_ARTIFACT_DIR}/{GROUP_EVIDENCE_FILE}")
    return GroupEvidence.from_frame(pd.read_parquet(path))


def _features_at(settings: Settings, data_version: dict) -> pd.DataFrame:
    """The features of the recorded as-of date at the recorded Delta version (time travel)."""
    catalog = table_catalog(settings)
    fqn = catalog.fqn(ML_INSURANCE_FEATURES)
    if data_version.get("table") != fqn:
        raise ValueError(f"the version was trained on {data_version.get('table')!r}, not on {fqn}")
    version, as_of = data_version.get("delta_version"), str(data_version.get("as_of_date"))
    frame = catalog.read_pandas(ML_INSURANCE_FEATURES, version=None if version is None else int(version))
    return frame[frame["as_of_date"].astype(str) == as_of]


def evaluation_rows(settings: Settings, data_version: dict, params: dict) -> pd.DataFrame:
    """The version's held-out test rows: labelled members whose key hashes into the test split."""
    frame = _features_at(settings, data_version)
    frame = frame[frame[LABEL_COLUMN].notna()]
    salt = params.get("split_salt", DEFAULT_SALT)
    held_out = held_out_mask(frame[params.get("split_key", "patient_natural_key")].astype(str).to_numpy(), salt,
                         float(params["test_share"]))
    rows = frame[held_out]
    if rows.empty:
        raise ValueError(f"no held-out rows in {data_version}")
    return rows.sort_values(params.get("split_key", "patient_natural_key")).reset_index(drop=True)


def model_inputs(uri: str) -> list[str]:
    """The columns the registered model takes (not the prohibited fields it declares to refuse them)."""
    info = mlflow.models.get_model_info(uri)
    return declared_inputs(info.signature.inputs if info.signature else None, info.metadata) or []


def _loads_and_predicts(uri: str):
    """The loaded model, after it predicted its own input example."""
    model = mlflow.pyfunc.load_model(uri)
    local = mlflow.artifacts.download_artifacts(uri)
    example = Model.load(local).load_input_example(local)
    if example is None:
        raise ValueError("the model has no input example")
    model.predict(example)
    return model


def scored_metrics(model, inputs: list[str], rows: pd.DataFrame) -> dict:
    """Headline metrics of a loaded model on labelled rows (each model with its own references)."""
    scored = model.predict(rows[inputs])
    reference = model.unwrap_python_model()
    actual = rows[LABEL_COLUMN].to_numpy(float)
    predicted = scored["predicted_annual_charges"].to_numpy(float)
    return {"r2": m.r2(actual, predicted), "mae": m.mae(actual, predicted),
            "risk_score_mae": m.risk_score_mae(actual, predicted, reference.prediction_reference,
                                               reference.actual_reference),
            "high_risk_capture": m.high_risk_capture(actual, predicted),
            "calibration": float(np.mean(predicted) / np.mean(actual)), "test_rows": len(rows)}


def champion_metrics(model_name: str, champion: str, rows: pd.DataFrame) -> dict:
    """The champion's metrics on the challenger's evaluation rows (same rows, same unit)."""
    uri = model_uri(model_name, champion)
    return scored_metrics(mlflow.pyfunc.load_model(uri), model_inputs(uri), rows)


def gather_evidence(settings: Settings, client, model_name: str, version: str, champion: str | None) -> Evidence:
    mv = client.get_model_version(model_name, version)
    uri = model_uri(model_name, version)
    lineage = {"training_data_version": mv.tags.get("training_data_version"),
               "git_commit": mv.tags.get("git_commit"), "run_id": mv.run_id}
    try:
        inputs = model_inputs(uri)
    except Exception as exc:  # recorded as the reason the checks fail
        return Evidence(metrics={}, oof=None, inputs=[], model_loads=False, load_error=str(exc),
                        lineage=lineage, failure=f"model info unavailable: {exc}")
    try:
        model = _loads_and_predicts(uri)
    except Exception as exc:
        return Evidence(metrics={}, oof=None, inputs=inputs, model_loads=False,
                        load_error=f"{type(exc).__name__}: {exc}", lineage=lineage,
                        failure="the model does not load or predict")
    oof, oof_failure = None, ""
    try:
        oof = load_oof_evidence(mv.run_id)
    except Exception as exc:  # recorded on the group checks, which then fail
        oof_failure = f"the run's out-of-fold evidence is unreadable: {type(exc).__name__}: {exc}"
    try:
        params = client.get_run(mv.run_id).data.params
        rows = evaluation_rows(settings, json.loads(lineage["training_data_version"] or "{}"), params)
        metrics = scored_metrics(model, inputs, rows)
    except Exception as exc:
        return Evidence(metrics={}, oof=oof, inputs=inputs, model_loads=True, lineage=lineage,
                        failure=f"re-scoring the held-out rows failed: {type(exc).__name__}: {exc}",
                        oof_failure=oof_failure)
    champion_values = None
    if champion is not None and str(champion) != str(version):
        champion_values = champion_metrics(model_name, champion, rows)
    return Evidence(metrics=metrics, oof=oof, inputs=inputs, model_loads=True,
                    champion_metrics=champion_values, lineage=lineage, oof_failure=oof_failure)

