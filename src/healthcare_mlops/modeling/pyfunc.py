"""The registered model: one MLflow pyfunc that returns everything a consumer needs.

Per member it returns ``predicted_annual_charges``, ``risk_score``, ``risk_category``,
``interval_lower`` and ``interval_upper``, so batch scoring and real-time scoring
return the same thing. It carries the reference distributions the risk score needs.

Its signature names the inputs but types them ``Any`` and makes them optional
(``input_signature``): MLflow casts a request to the declared types before ``predict``
runs, and that cast is lossy (the scoring server turns ``"smoker": "no"`` into ``True``
and ``"age": 35.5`` into ``35``), and a field MLflow itself finds missing is refused in its
own words, after a dump of the whole request. Untyped and optional, the caller's values
reach ``predict`` as sent, and the input contract (``input_contract.row_problems``) refuses
a missing field or a wrong type with a message naming the record and the field
(``scoring_request.RequestRefused``, handed to MLflow as ``RefusedByModel``). The signature
also declares the prohibited fields (``privacy.PROHIBITED_FIELD_NAMES``) so that a request
carrying one is refused by name, and the request params (``scoring_request.SCORING_PARAMS``).

A request with ``{"params": {"reasons": true}}`` also gets each member's explanation (base
value, one contribution per input, the floor line, ``top_reasons`` in words and
``outside_training_range``; ``with_reasons``); without it the output is as above.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import ParamSchema, ParamSpec

from healthcare_mlops.explanations.contributions import (CONTRIBUTION_PREFIX, OUTSIDE_COLUMN, REASONS_PARAM,
                                                         TOP_REASONS_COLUMN, ExplanationUnavailable)
from healthcare_mlops.explanations.reasons import outside_matrix, top_reasons
from healthcare_mlops.modeling.input_contract import prohibited_field_problems, row_problems, typed_model_input
from healthcare_mlops.modeling.intervals import AdaptiveIntervals
from healthcare_mlops.modeling.risk import risk_category, risk_score
from healthcare_mlops.modeling.scoring_request import (
    ERROR_COLUMN, FAIL, ON_ERROR, SCORING_PARAMS, RequestRefused, record_errors, resolve_params)
from healthcare_mlops.privacy import PROHIBITED_FIELD_NAMES

REFUSED_FIELDS = "refused_fields"
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


def refused_fields(inputs) -> list[str]:
    """The prohibited fields the signature declares only so that the model can refuse them."""
    return [c for c in PROHIBITED_FIELD_NAMES if c not in list(inputs)]


def model_metadata(example: pd.DataFrame) -> dict:
    """The MLmodel's metadata: which declared fields are refused, not inputs (``model_inputs``)."""
    return {REFUSED_FIELDS: refused_fields(example.columns)}


def model_inputs(schema, metadata: dict | None) -> list[str] | None:
    """The columns a model takes: its signature's names minus the fields it refuses (None
    without named inputs). ``metadata`` is the MLmodel's (``ModelInfo.metadata``)."""
    if schema is None or not schema.has_input_names():
        return None
    refused = set((metadata or {}).get(REFUSED_FIELDS, ()))
    return [name for name in schema.input_names() if name not in refused]


def input_signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """The model's signature: inputs named, optional and untyped, the prohibited fields
    declared so they reach the model, and the request params (see the module docstring)."""
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inferred = infer_signature(None, output)      # the outputs only: the inputs are declared here
    names = [*example.columns, *refused_fields(example.columns)]
    inputs = Schema([ColSpec(AnyType(), name, required=False) for name in names])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs, params=params_schema())


def scored_or_refused(scored: pd.DataFrame, errors: list[dict], index: pd.Index) -> pd.DataFrame:
    """One output record per request record, in order: the scored ones with ``error`` None,
    the refused ones with every output None and their error (``on_error: skip``)."""
    output = scored.astype(object).reindex(index)
    output = output.astype(object).where(output.notna(), None)
    refused = dict(zip(index[[e["record"] for e in errors]], errors))
    output[ERROR_COLUMN] = [refused.get(i) for i in index]
    return output


def params_schema() -> ParamSchema:
    """The params part of the model's signature (MLflow passes only declared params to ``predict``)."""
    return ParamSchema([ParamSpec(p.name, p.dtype, p.default) for p in SCORING_PARAMS])


class RefusedByModel(MlflowException):
    """A ``RequestRefused`` as MLflow's scoring server answers it: HTTP 400 with the refusal's own JSON."""

    def __init__(self, refused: RequestRefused):
        self.refused = refused
        self.errors, self.summary = refused.errors, refused.summary
        super().__init__(refused.summary, error_code=INVALID_PARAMETER_VALUE)

    def serialize_as_json(self) -> str:
        return self.refused.serialize_as_json()


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

    def request_problems(self, frame: pd.DataFrame) -> pd.Series:
        """Per record, the first thing wrong with it (``input_contract`` words), or None."""
        problems = row_problems(frame, quote_values=False)
        problems = problems.where(problems.notna(), prohibited_field_problems(frame, self.extra_inputs))
        for column in self.extra_inputs:          # inputs beyond the contract this model was trained on
            if column not in frame.columns:
                problems = problems.where(problems.notna(), f"{column}: missing field")
        return problems

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        try:
            return self.checked_predict(model_input, params)
        except RequestRefused as refused:
            raise RefusedByModel(refused) from None

    def checked_predict(self, model_input: pd.DataFrame, params: dict | None) -> pd.DataFrame:
        """``predict`` in the model's own terms: a refusal is a ``RequestRefused``."""
        options = resolve_params(params)
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        problems = self.request_problems(frame)
        bad = problems.notna().to_numpy()
        if not bad.any():
            return self.scored(frame, options[REASONS_PARAM])
        errors = record_errors(problems)
        if options[ON_ERROR] == FAIL:
            raise RequestRefused(errors, records=len(frame))
        valid = frame[~bad]
        scored = self.scored(valid, options[REASONS_PARAM]) if len(valid) else pd.DataFrame(
            columns=list(OUTPUT_COLUMNS))
        return scored_or_refused(scored, errors, frame.index)

    def scored(self, frame: pd.DataFrame, reasons: bool) -> pd.DataFrame:
        """The output for records that meet the input contract, with the explanation when asked."""
        typed = typed_model_input(frame, self.extra_inputs)
        if reasons:
            return with_reasons(self, typed)
        return score(self.pipeline, self.intervals, self.prediction_reference, typed)


def _reasons_refused(message: str) -> RequestRefused:
    return RequestRefused([{"record": None, "field": f"params.{REASONS_PARAM}", "message": message}], records=0)


def with_reasons(model: InsuranceRiskModel, typed: pd.DataFrame) -> pd.DataFrame:
    """The output with the explanation: ``EXPLANATION_COLUMNS`` (the floor line here is the clip at
    0 USD: real-time scoring applies no business rules), ``top_reasons`` in words and
    ``outside_training_range`` (the inputs outside the training range, comma-separated, '' when
    none). A version without an exact explanation is refused with the cause (HTTP 400)."""
    explainer = getattr(model, "explainer", None)
    if explainer is None:
        raise _reasons_refused("this model version has no exact explanation (trained before explanations, or "
                               "a model type that cannot be explained exactly): ask without reasons")
    try:
        output = score(model.pipeline, model.intervals, model.prediction_reference, typed, explainer)
    except ExplanationUnavailable as exc:
        raise _reasons_refused(str(exc)) from None
    names = explainer.inputs
    contributions = output[[f"{CONTRIBUTION_PREFIX}{n}" for n in names]].to_numpy()
    outside = outside_matrix(typed, explainer.training_range, names)
    output[TOP_REASONS_COLUMN] = top_reasons(typed, contributions, names, outside).to_pylist()
    output[OUTSIDE_COLUMN] = [",".join(n for n, flag in zip(names, row) if flag) for row in outside.tolist()]
    return output
