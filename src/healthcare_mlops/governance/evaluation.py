"""Gather a registered version's evidence: re-score its held-out test set through the registry.

Nothing here trusts the numbers the training run logged: the model is loaded from the
registry, predicts its input example and the stored test set, and the metrics are
computed again. Whatever fails is recorded as the reason, and the check then fails.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.models import Model

from healthcare_mlops.features.definitions import LABEL_COLUMN
from healthcare_mlops.governance.checks import Evidence
from healthcare_mlops.modeling import metrics as m
from healthcare_mlops.modeling.training import group_metrics
from healthcare_mlops.modeling.artifacts import EVALUATION_ARTIFACT_DIR, TEST_SET_FILE

REPORTING_COLUMNS = ("sex", "region", "age_band")


def model_uri(model_name: str, version: str) -> str:
    return f"models:/{model_name}/{version}"


def load_test_set(run_id: str) -> pd.DataFrame:
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{EVALUATION_ARTIFACT_DIR}/{TEST_SET_FILE}")
    return pd.read_parquet(path)


def model_inputs(uri: str) -> list[str]:
    info = mlflow.models.get_model_info(uri)
    return list(info.signature.inputs.input_names()) if info.signature is not None else []


def _loads_and_predicts(uri: str):
    """The loaded model, after it predicted its own input example."""
    model = mlflow.pyfunc.load_model(uri)
    local = mlflow.artifacts.download_artifacts(uri)
    example = Model.load(local).load_input_example(local)
    if example is None:
        raise ValueError("the model has no input example")
    model.predict(example)
    return model


def rescored_mae(uri: str, test: pd.DataFrame) -> float:
    """The MAE of the model at ``uri`` on ``test`` (the champion comparison)."""
    model = mlflow.pyfunc.load_model(uri)
    predicted = model.predict(test[model_inputs(uri)])["predicted_annual_charges"]
    return m.mae(test[LABEL_COLUMN], predicted)


def gather_evidence(client, model_name: str, version: str, champion: str | None) -> Evidence:
    mv = client.get_model_version(model_name, version)
    uri = model_uri(model_name, version)
    lineage = {"training_data_version": mv.tags.get("training_data_version"),
               "git_commit": mv.tags.get("git_commit"), "run_id": mv.run_id}
    try:
        inputs = model_inputs(uri)
    except Exception as exc:  # recorded as the reason the checks fail
        return Evidence(metrics={}, groups=[], inputs=[], model_loads=False, load_error=str(exc),
                        lineage=lineage, failure=f"model info unavailable: {exc}")
    try:
        model = _loads_and_predicts(uri)
    except Exception as exc:
        return Evidence(metrics={}, groups=[], inputs=inputs, model_loads=False,
                        load_error=f"{type(exc).__name__}: {exc}", lineage=lineage,
                        failure="the model does not load or predict")
    try:
        test = load_test_set(mv.run_id)
        scored = model.predict(test[inputs])
        reference = model.unwrap_python_model()
        actual = test[LABEL_COLUMN].to_numpy(float)
        predicted = scored["predicted_annual_charges"].to_numpy(float)
        metrics = {"r2": m.r2(actual, predicted), "mae": m.mae(actual, predicted),
                   "risk_score_mae": m.risk_score_mae(actual, predicted, reference.prediction_reference,
                                                      reference.actual_reference),
                   "high_risk_capture": m.high_risk_capture(actual, predicted), "test_rows": len(test)}
        rescored = pd.concat([test.drop(columns=[c for c in scored.columns if c in test.columns]).reset_index(drop=True),
                              scored.reset_index(drop=True)], axis=1)
        groups = group_metrics(rescored, [c for c in REPORTING_COLUMNS if c in rescored.columns])
    except Exception as exc:
        return Evidence(metrics={}, groups=[], inputs=inputs, model_loads=True, lineage=lineage,
                        failure=f"re-scoring the test set failed: {type(exc).__name__}: {exc}")
    champion_mae = None
    if champion is not None and str(champion) != str(version):
        champion_mae = rescored_mae(model_uri(model_name, champion), test)
    return Evidence(metrics=metrics, groups=groups, inputs=inputs, model_loads=True,
                    champion_mae=champion_mae, lineage=lineage)

