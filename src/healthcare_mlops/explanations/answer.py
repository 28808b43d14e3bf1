"""The real-time answer with reasons: the model's output plus the member's explanation.

``InsuranceRiskModel.predict`` returns this when the request carries
``{"params": {"reasons": true}}``: the output columns, ``EXPLANATION_COLUMNS`` (base,
one contribution per input, the floor line: here the clip at 0 USD, since real-time
scoring applies no business rules), ``top_reasons`` in words and
``outside_training_range`` (the inputs outside the training range, comma-separated, ''
when none). A model version without an exact explanation answers 400 with the cause.
"""

from __future__ import annotations

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from healthcare_mlops.explanations.contributions import (CONTRIBUTION_PREFIX, OUTSIDE_COLUMN, TOP_REASONS_COLUMN,
                                                         ExplanationUnavailable)
from healthcare_mlops.explanations.reasons import outside_matrix, top_reasons
from healthcare_mlops.modeling.pyfunc import score


def with_reasons(model, typed: pd.DataFrame) -> pd.DataFrame:
    """``model`` (an InsuranceRiskModel) on contract-valid ``typed`` inputs, with its explanation."""
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
    output[TOP_REASONS_COLUMN] = top_reasons(typed, contributions, names, outside)
    output[OUTSIDE_COLUMN] = [",".join(n for n, flag in zip(names, row) if flag) for row in outside.tolist()]
    return output
