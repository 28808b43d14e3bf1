"""The registered model: one MLflow pyfunc that returns everything a consumer needs.

Per member it returns ``predicted_annual_charges``, ``risk_score``, ``risk_category``,
``interval_lower`` and ``interval_upper``, so batch scoring and real-time scoring
return the same thing. It carries the reference distributions the risk score needs.

Its signature names the inputs but types them ``Any`` (``input_signature``): MLflow casts
a request to the declared types before ``predict`` runs, and that cast is lossy (the
scoring server turns ``"smoker": "no"`` into ``True`` and ``"age": 35.5`` into ``35``).
Untyped, the caller's values reach ``predict`` as sent, and the input contract
(``input_contract.row_problems``) refuses a wrong type with a message naming the field; a
missing field is still refused by MLflow itself ("Model is missing inputs ['age']").

A request with ``{"params": {"reasons": true}}`` also gets each member's explanation (base
value, one contribution per input, the floor line, ``top_reasons`` in words and
``outside_training_range``; ``with_reasons``); without it the output is as above.
The signature declares the parameter, so the MLflow scoring server and Model Serving pass it.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from healthcare_mlops.explanations.contributions import (CONTRIBUTION_PREFIX, OUTSIDE_COLUMN, REASONS_PARAM,
                                                         TOP_REASONS_COLUMN, ExplanationUnavailable)
from healthcare_mlops.explanations.reasons import outside_matrix, top_reasons
from healthcare_mlops.modeling.input_contract import row_problems, typed_model_input
from healthcare_mlops.modeling.intervals import AdaptiveIntervals
from healthcare_mlops.modeling.risk import risk_category, risk_score

OUTPUT_COLUMNS = ("predicted_annual_charges", "risk_score", "risk_category", "interval_lower", "interval_upper")


def score(pipeline, intervals: AdaptiveIntervals, prediction_reference: np.ndarray,
          inputs: pd.DataFrame, explainer=None) -> pd.DataFrame:
    """Predictions, risk scores, categories and intervals for valid, typed model inputs.

    With an ``explainer`` (``explanations.contributions.Explainer``) the prediction comes
    from the same encoded rows as its explanation, whose ``EXPLANATION_COLUMNS`` are added."""
    explanation = None if explainer is None else explainer.explain(pipeline, inputs)
    predicted = np.maximum(pipeline.predict(inputs) if explanation is None else explanation.raw, 0.0)
    scores = risk_score(predicted, prediction_reference)
    lower, upper = intervals.bounds(inputs, predicted)
    return pd.DataFrame({
        "predicted_annual_charges": predicted,
        "risk_score": scores,
        "risk_category": risk_category(scores).astype(str),
        "interval_lower": lower,
        "interval_upper": upper,
        **({} if explanation is None else explanation.columns(predicted)),
    }, index=inputs.index)


def input_signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """The model's signature: inputs named and required but untyped (see the module docstring)."""
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inferred = infer_signature(example, output, params={REASONS_PARAM: False})
    inputs = Schema([ColSpec(AnyType(), name, required=True) for name in example.columns])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs, params=inferred.params)


class InsuranceRiskModel(mlflow.pyfunc.PythonModel):
    """The fitted pipeline, its intervals and the training reference distributions."""

    def __init__(self, pipeline, intervals: AdaptiveIntervals, prediction_reference: np.ndarray,
                 actual_reference: np.ndarray, extra_inputs: tuple = (), explainer=None):
        self.pipeline = pipeline
        self.extra_inputs = tuple(extra_inputs)
        self.intervals = intervals
        self.prediction_reference = np.asarray(prediction_reference, dtype=float)
        self.actual_reference = np.asarray(actual_reference, dtype=float)
        self.explainer = explainer          # explanations.contributions.Explainer, None when unavailable

    def predict(self, context, model_input, params=None):
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        missing = [c for c in self.extra_inputs if c not in frame.columns]
        if missing:
            raise MlflowException(f"{missing[0]}: missing field", error_code=INVALID_PARAMETER_VALUE)
        problems = row_problems(frame)
        if problems.notna().any():
            position = int(np.flatnonzero(problems.notna().to_numpy())[0])
            raise MlflowException(f"invalid input in record {position}: {problems.iloc[position]}",
                                  error_code=INVALID_PARAMETER_VALUE)
        typed = typed_model_input(frame, self.extra_inputs)
        if wants_reasons(params):
            return with_reasons(self, typed)
        return score(self.pipeline, self.intervals, self.prediction_reference, typed)


def wants_reasons(params) -> bool:
    """Whether a request asked for the reasons (``{"params": {"reasons": true}}``)."""
    value = (params or {}).get(REASONS_PARAM, False)
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def with_reasons(model: InsuranceRiskModel, typed: pd.DataFrame) -> pd.DataFrame:
    """The output with the explanation: ``EXPLANATION_COLUMNS`` (the floor line here is the clip at
    0 USD: real-time scoring applies no business rules), ``top_reasons`` in words and
    ``outside_training_range`` (the inputs outside the training range, comma-separated, '' when
    none). A version without an exact explanation is refused with the cause (HTTP 400)."""
    explainer = getattr(model, "explainer", None)
    if explainer is None:
        raise MlflowException("this model version has no exact explanation (trained before explanations, or "
                              "a model type that cannot be explained exactly): ask without reasons",
                              error_code=INVALID_PARAMETER_VALUE)
    try:
        output = score(model.pipeline, model.intervals, model.prediction_reference, typed, explainer)
    except ExplanationUnavailable as exc:
        raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
    names = explainer.inputs
    contributions = output[[f"{CONTRIBUTION_PREFIX}{n}" for n in names]].to_numpy()
    outside = outside_matrix(typed, explainer.training_range, names)
    output[TOP_REASONS_COLUMN] = top_reasons(typed, contributions, names, outside).to_pylist()
    output[OUTSIDE_COLUMN] = [",".join(n for n, flag in zip(names, row) if flag) for row in outside.tolist()]
    return output
