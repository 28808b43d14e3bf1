"""What a real-time scoring request may ask for, and how the model refuses one.

**Params.** A request may carry ``"params"`` next to its records (the MLflow scoring
server and a Databricks Model Serving endpoint both pass them to the pyfunc's ``predict``;
the model's signature declares them, ``params_schema``). Each one is a ``ScoringParam`` in
``SCORING_PARAMS``: to add one, add an entry there and read ``options[name]`` in
``predict``. Today:

- ``on_error``: ``"fail"`` (default) refuses the whole request when any record breaks
  the input contract; ``"skip"`` scores the valid records and returns, for each refused
  one, its error in place of a prediction.
- ``reasons``: ``false`` (default); ``true`` adds each member's explanation
  (``pyfunc.with_reasons``).

**Refusals.** ``RequestRefused`` is the model's 400: a JSON body with a short ``message``
(the first problem, and how many more) and ``errors``, one ``{"record", "field",
"message"}`` per refused record (``record`` is the record's position in the request,
from 0). The scoring server puts ``Failed to predict data '<the whole input DataFrame>'``
in front of the message of any ``MlflowException`` raised in ``predict``; this exception
writes its own JSON, so a 10,000-record request gets its errors, not a dump of itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from healthcare_mlops.explanations.contributions import REASONS_PARAM

ON_ERROR = "on_error"
FAIL, SKIP = "fail", "skip"
ERROR_COLUMN = "error"        # in "skip" mode, each output record's error (None when it was scored)
SHOWN_ERRORS = 3              # problems quoted in a refusal's message; ``errors`` has them all


@dataclass(frozen=True)
class ScoringParam:
    """One request param: its MLflow type, its default and the values it accepts (None: any)."""

    name: str
    dtype: str
    default: object
    choices: tuple | None = None

    def resolve(self, value) -> object:
        if value is None:
            return self.default
        if self.choices is not None and value not in self.choices:
            raise RequestRefused([{"record": None, "field": f"params.{self.name}",
                                   "message": f"expected one of {', '.join(map(str, self.choices))}, "
                                              f"got {json.dumps(value)}"}], records=0)
        return value


SCORING_PARAMS = (
    ScoringParam(ON_ERROR, "string", FAIL, (FAIL, SKIP)),
    ScoringParam(REASONS_PARAM, "boolean", False, (True, False)),
)


def params_schema():
    """The params part of the model's signature (MLflow passes only declared params to ``predict``)."""
    from mlflow.types.schema import ParamSchema, ParamSpec

    return ParamSchema([ParamSpec(p.name, p.dtype, p.default) for p in SCORING_PARAMS])


def resolve_params(params: dict | None) -> dict:
    """Every declared param's value for this request: the one sent, else its default."""
    params = params or {}
    return {p.name: p.resolve(params.get(p.name)) for p in SCORING_PARAMS}


def record_errors(problems: pd.Series) -> list[dict]:
    """``{"record", "field", "message"}`` for each refused record, from the contract's
    ``"<field>: <reason>"`` per row (None for a valid row); ``record`` is the row's position."""
    errors = []
    for position, problem in enumerate(problems.tolist()):
        if problem is not None:
            field_name, _, reason = problem.partition(": ")
            errors.append({"record": position, "field": field_name, "message": reason})
    return errors


def _described(error: dict, records: int) -> str:
    where = f"record {error['record']}, " if error["record"] is not None and records > 1 else ""
    return f"{where}{error['field']}: {error['message']}"


class RequestRefused(MlflowException):
    """A 400 whose JSON names each refused record and field (see the module docstring)."""

    def __init__(self, errors: list[dict], records: int):
        self.errors = errors
        shown = "; ".join(_described(e, records) for e in errors[:SHOWN_ERRORS])
        more = len(errors) - SHOWN_ERRORS
        counted = f"{len(errors)} of {records} records refused: " if records > 1 else ""
        self.summary = counted + shown + (f"; and {more} more (see errors)" if more > 0 else "")
        super().__init__(self.summary, error_code=INVALID_PARAMETER_VALUE)

    def serialize_as_json(self) -> str:
        return json.dumps({"error_code": self.error_code, "message": self.summary, "errors": self.errors})
