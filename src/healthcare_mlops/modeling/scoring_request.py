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

**Limits and shape.** The local scoring server (``scoring/http_server.py``) checks each
request with ``checked_request`` before MLflow parses it: ``Content-Type: application/json``,
at most ``MAX_REQUEST_BYTES`` (4 MiB; more is a 413) and ``MAX_RECORDS`` records, one of
``dataframe_records`` (objects) or ``dataframe_split`` (``columns`` and ``data``), every value
a JSON scalar, and no field that ``privacy.is_prohibited`` names (``SSN``, ``FirstName``,
``Gender`` ..., whatever its spelling: the request is refused whole, since MLflow would drop
a field the model does not declare without a word). A refusal names the field and the rule,
never the value sent.

**Refusals.** ``RequestRefused`` is the model's 400: a JSON body with a short ``message``
(the first problem, and how many more) and ``errors``, one ``{"record", "field",
"message"}`` per refused record (``record`` is the record's position in the request,
from 0). The scoring server puts ``Failed to predict data '<the whole input DataFrame>'``
in front of the message of any ``MlflowException`` raised in ``predict``; the pyfunc hands
MLflow a refusal as ``pyfunc.RefusedByModel``, which writes this module's JSON, so a
10,000-record request gets its errors, not a dump of itself. This module knows nothing of
MLflow (the pyfunc module is the one that does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from healthcare_mlops.explanations.contributions import REASONS_PARAM
from healthcare_mlops.modeling.input_contract import PROHIBITED_FIELD_RULE
from healthcare_mlops.privacy import is_prohibited

ON_ERROR = "on_error"
FAIL, SKIP = "fail", "skip"
ERROR_COLUMN = "error"        # in "skip" mode, each output record's error (None when it was scored)
SHOWN_ERRORS = 3              # problems quoted in a refusal's message; ``errors`` has them all
MAX_REQUEST_BYTES = 4 * 1024 * 1024     # a request's body; the server answers a larger one 413 unread
MAX_RECORDS = 10_000                    # records in one request
RECORDS, SPLIT, PARAMS = "dataframe_records", "dataframe_split", "params"
SHOWN_NAME = 64               # a caller's field name is cut to this length in a refusal
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"    # a refusal's error code: MLflow's and HTTP's 400


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
            raise request_refusal(f"params.{self.name}", f"expected one of {', '.join(map(str, self.choices))}")
        return value


SCORING_PARAMS = (
    ScoringParam(ON_ERROR, "string", FAIL, (FAIL, SKIP)),
    ScoringParam(REASONS_PARAM, "boolean", False, (True, False)),
)


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


class RequestRefused(Exception):
    """A 400 whose JSON names each refused record and field (see the module docstring)."""

    error_code = INVALID_PARAMETER_VALUE

    def __init__(self, errors: list[dict], records: int):
        self.errors = errors
        shown = "; ".join(_described(e, records) for e in errors[:SHOWN_ERRORS])
        more = len(errors) - SHOWN_ERRORS
        counted = f"{len(errors)} of {records} records refused: " if records > 1 else ""
        self.summary = counted + shown + (f"; and {more} more (see errors)" if more > 0 else "")
        super().__init__(self.summary)

    def serialize_as_json(self) -> str:
        return json.dumps({"error_code": self.error_code, "message": self.summary, "errors": self.errors})


def request_refusal(field: str, message: str) -> RequestRefused:
    """A refusal of the request as a whole (no record), naming ``field`` and the rule it broke."""
    return RequestRefused([{"record": None, "field": field, "message": message}], records=0)


def body_too_large() -> RequestRefused:
    """The refusal of a body over ``MAX_REQUEST_BYTES`` (HTTP 413)."""
    return request_refusal("body", f"larger than {MAX_REQUEST_BYTES} bytes")


def _name(field) -> str:
    text = str(field)
    return text if len(text) <= SHOWN_NAME else text[:SHOWN_NAME - 3] + "..."


def _scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _records_of(body: dict) -> list[list[tuple]]:
    """Each record of the request's data as (field, value) pairs, or a refusal of its shape."""
    if SPLIT in body:
        split = body[SPLIT]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
                or not isinstance(split.get("data"), list) or set(split) - {"columns", "data", "index"}:
            raise request_refusal(SPLIT, "expected an object with a list 'columns' and a list 'data' of rows")
        columns = split["columns"]
        if not all(isinstance(c, str) for c in columns):
            raise request_refusal(f"{SPLIT}.columns", "expected field names (text)")
        if not all(isinstance(row, list) and len(row) == len(columns) for row in split["data"]):
            raise request_refusal(f"{SPLIT}.data", f"expected rows of {len(columns)} values, one per column")
        return [list(zip(columns, row)) for row in split["data"]]
    records = body[RECORDS]
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise request_refusal(RECORDS, "expected a list of objects, one per member")
    return [list(r.items()) for r in records]


def checked_request(body: bytes, content_type: str | None, allowed_fields=()) -> dict:
    """The JSON of a scoring request that keeps the limits and shape in the module docstring, or a
    ``RequestRefused`` naming the field and the rule. ``allowed_fields`` are the model's own inputs."""
    mime, _, parameters = (content_type or "").partition(";")
    charset = parameters.strip().lower().removeprefix("charset=") or "utf-8"
    if mime.strip().lower() != "application/json" or charset != "utf-8":
        raise request_refusal("Content-Type", "expected application/json (UTF-8)")
    if len(body) > MAX_REQUEST_BYTES:
        raise body_too_large()
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):   # RecursionError: nesting deeper than Python's stack
        raise request_refusal("body", "not a JSON document") from None
    if not isinstance(parsed, dict) or len({RECORDS, SPLIT} & set(parsed)) != 1:
        raise request_refusal("body", f"expected an object with one of {RECORDS} or {SPLIT}")
    unknown = sorted(set(parsed) - {RECORDS, SPLIT, PARAMS})
    if unknown:
        raise request_refusal(_name(unknown[0]), f"not a request field (expected {RECORDS} or {SPLIT}, and {PARAMS})")
    if PARAMS in parsed and not (isinstance(parsed[PARAMS], dict) and all(map(_scalar, parsed[PARAMS].values()))):
        raise request_refusal(PARAMS, "expected an object of names and single values")
    rows = _records_of(parsed)
    data = RECORDS if RECORDS in parsed else f"{SPLIT}.data"
    if not rows:
        raise request_refusal(data, "no records: send at least one")
    if len(rows) > MAX_RECORDS:
        raise request_refusal(data, f"more than {MAX_RECORDS} records in one request")
    nested = next(((i, f) for i, row in enumerate(rows) for f, value in row if not _scalar(value)), None)
    if nested is not None:
        raise RequestRefused([{"record": nested[0], "field": _name(nested[1]),
                               "message": "a nested value (list or object): each field takes one value"}], len(rows))
    fields = {f for row in rows for f, _ in row}
    prohibited = sorted({_name(f) for f in fields if f not in allowed_fields and is_prohibited(f)})
    if prohibited:
        raise RequestRefused([{"record": None, "field": f, "message": PROHIBITED_FIELD_RULE} for f in prohibited],
                             records=0)
    return parsed
