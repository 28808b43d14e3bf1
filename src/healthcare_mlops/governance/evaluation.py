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

import numpy as np
import pandas as pd

from healthcare_mlops.features.definitions import LABEL_COLUMN
from healthcare_mlops.governance.checks import Evidence
from healthcare_mlops.modeling import metrics as m
from healthcare_mlops.governance.group_evidence import GroupEvidence
from healthcare_mlops.modeling.artifacts import EVALUATION_ARTIFACT_DIR, GROUP_EVIDENCE_FILE
from healthcare_mlops.modeling.splits import DEFAULT_SALT, held_out_mask
from healthcare_mlops.tables import ML_INSURANCE_FEATURES


def load_oof_evidence(registry, run_id: str) -> GroupEvidence:
    """The training run's out-of-fold evidence: bootstrap sums per group."""
    return GroupEvidence.from_frame(registry.run_parquet(run_id, f"{EVALUATION_ARTIFACT_DIR}/{GROUP_EVIDENCE_FILE}"))


def _features_at(catalog, data_version: dict) -> pd.DataFrame:
    """The features of the recorded as-of date at the recorded Delta version (time travel)."""
    fqn = catalog.fqn(ML_INSURANCE_FEATURES)
    if data_version.get("table") != fqn:
        raise ValueError(f"the version was trained on {data_version.get('table')!r}, not on {fqn}")
    version, as_of = data_version.get("delta_version"), str(data_version.get("as_of_date"))
    frame = catalog.read_pandas(ML_INSURANCE_FEATURES, version=None if version is None else int(version))
    return frame[frame["as_of_date"].astype(str) == as_of]


def evaluation_rows(catalog, data_version: dict, params: dict) -> pd.DataFrame:
    """The version's held-out test rows: labelled members whose key hashes into the test split
    (``catalog``: the target's ``TableCatalog``)."""
    frame = _features_at(catalog, data_version)
    frame = frame[frame[LABEL_COLUMN].notna()]
    salt = params.get("split_salt", DEFAULT_SALT)
    held_out = held_out_mask(frame[params.get("split_key", "patient_natural_key")].astype(str).to_numpy(), salt,
                         float(params["test_share"]))
    rows = frame[held_out]
    if rows.empty:
        raise ValueError(f"no held-out rows in {data_version}")
    return rows.sort_values(params.get("split_key", "patient_natural_key")).reset_index(drop=True)


def _loads_and_predicts(registry, version: str):
    """The loaded model, after it predicted its own input example."""
    model = registry.load(version)
    example = registry.input_example(version)
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


def champion_metrics(registry, champion: str, rows: pd.DataFrame) -> dict:
    """The champion's metrics on the challenger's evaluation rows (same rows, same unit)."""
    return scored_metrics(registry.load(champion), registry.inputs(champion), rows)


def gather_evidence(catalog, registry, version: str, champion: str | None) -> Evidence:
    """The checks' evidence on ``version`` (``catalog``: the target's ``TableCatalog``; ``registry``: the
    model's registry adapter, runtime/model_registry.py); what fails is recorded as the reason."""
    mv = registry.version(version)
    lineage = {"training_data_version": mv.tags.get("training_data_version"),
               "git_commit": mv.tags.get("git_commit"), "run_id": mv.run_id}
    try:
        inputs = registry.inputs(version)
    except Exception as exc:  # recorded as the reason the checks fail
        return Evidence(metrics={}, oof=None, inputs=[], model_loads=False, load_error=str(exc),
                        lineage=lineage, failure=f"model info unavailable: {exc}")
    try:
        model = _loads_and_predicts(registry, version)
    except Exception as exc:
        return Evidence(metrics={}, oof=None, inputs=inputs, model_loads=False,
                        load_error=f"{type(exc).__name__}: {exc}", lineage=lineage,
                        failure="the model does not load or predict")
    oof, oof_failure = None, ""
    try:
        oof = load_oof_evidence(registry, mv.run_id)
    except Exception as exc:  # recorded on the group checks, which then fail
        oof_failure = f"the run's out-of-fold evidence is unreadable: {type(exc).__name__}: {exc}"
    try:
        params = registry.run(mv.run_id).data.params
        rows = evaluation_rows(catalog, json.loads(lineage["training_data_version"] or "{}"), params)
        metrics = scored_metrics(model, inputs, rows)
    except Exception as exc:
        return Evidence(metrics={}, oof=oof, inputs=inputs, model_loads=True, lineage=lineage,
                        failure=f"re-scoring the held-out rows failed: {type(exc).__name__}: {exc}",
                        oof_failure=oof_failure)
    champion_values = None
    if champion is not None and str(champion) != str(version):
        champion_values = champion_metrics(registry, champion, rows)
    return Evidence(metrics=metrics, oof=oof, inputs=inputs, model_loads=True,
                    champion_metrics=champion_values, lineage=lineage, oof_failure=oof_failure)

