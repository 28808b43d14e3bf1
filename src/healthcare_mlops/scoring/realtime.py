"""Real-time scoring of one member's model inputs, as the console's Score page asks for it.

Three routes, one interface (``score(record) -> dict`` and ``route``, the words the page
shows): the Model Serving endpoint of a workspace, a local scoring server
(``healthcare-mlops serve``, $HEALTHCARE_MLOPS_SCORING_URL), or the champion loaded from
the local registry in-process. ``healthcare_mlops.composition.realtime_scorer`` picks one.
The endpoint's scorer talks databricks-sdk, so it lives with the adapters
(``runtime/serving_endpoint_scorer.py``).
All three send only the five model inputs and turn every refusal into a ``UserError`` that
names the cause; ``score(record, reasons=True)`` asks for the member's explanation too
(the pyfunc's ``reasons`` parameter, see modeling/pyfunc.py). Each answer carries
``model_version``: the version that answered (the scoring server's ``model_version``, the
endpoint's served entity, the version loaded here), so a page never shows a stale champion's
answer as the current one's.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from healthcare_mlops.errors import UserError
from healthcare_mlops.explanations.contributions import REASONS_PARAM

VERSION_FIELD = "model_version"
SCORING_URL_ENV = "HEALTHCARE_MLOPS_SCORING_URL"      # `healthcare-mlops serve`: http://host:port[/invocations]
SERVING_ENDPOINT_ENV = "HEALTHCARE_MLOPS_SERVING_ENDPOINT"   # optional; default: the target's serving_endpoint_name
REQUEST_TIMEOUT_SECONDS = 30


def first_prediction(payload, version: str | None = None) -> dict:
    """The first record of a scoring response (records, or column -> values), with the version that answered."""
    predictions = payload.get("predictions") if isinstance(payload, dict) else payload
    if version is None and isinstance(payload, dict) and payload.get(VERSION_FIELD) is not None:
        version = str(payload[VERSION_FIELD])
    if isinstance(predictions, dict):                 # column -> values (dataframe "split"/"columns")
        record = {k: (v[0] if isinstance(v, list) else v) for k, v in predictions.items()}
    elif isinstance(predictions, list) and predictions:
        record = dict(predictions[0])
    else:
        raise UserError(f"the scoring response has no prediction: {str(payload)[:200]}")
    return {**record, VERSION_FIELD: version}


def request_body(record: dict, reasons: bool = False) -> dict:
    """One member's scoring request; with ``reasons`` it asks the model for the explanation too."""
    return {"dataframe_records": [record], **({"params": {REASONS_PARAM: True}} if reasons else {})}


class ScoringServerScorer:
    """The MLflow scoring server ``healthcare-mlops serve`` runs, over HTTP."""

    needs_registered_champion = False

    def __init__(self, url: str):
        self.url = url

    @property
    def route(self) -> str:
        return f"local scoring server {self.url}"

    @property
    def endpoint(self) -> str:
        """The server's ``/invocations`` (the address may be the server's or the endpoint's)."""
        endpoint = self.url.rstrip("/")
        return endpoint if endpoint.endswith("/invocations") else endpoint + "/invocations"

    def score(self, record: dict, reasons: bool = False) -> dict:
        body = json.dumps(request_body(record, reasons)).encode()
        request = urllib.request.Request(self.endpoint, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # nosec B310  # http(s) URL the operator configured
                return first_prediction(json.loads(response.read()), response.headers.get("x-model-version"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except (ValueError, AttributeError):
                pass   # not JSON: the body as it is
            raise UserError(f"the scoring server refused the request ({exc.code}): {detail}") from exc
        except urllib.error.URLError as exc:
            raise UserError(f"the scoring server at {self.url} is not reachable: {exc.reason}") from exc


class InProcessScorer:
    """The champion loaded from the local registry into this process (no server running)."""

    needs_registered_champion = True
    route = "the champion loaded from the local registry"

    def __init__(self, load_champion: Callable[[], tuple[object, str]], refusals: tuple[type[Exception], ...]):
        self._load_champion = load_champion       # (the loaded pyfunc, its version), cached by the caller
        self._refusals = refusals                 # what the loaded model raises when it refuses a request

    def score(self, record: dict, reasons: bool = False) -> dict:
        import pandas as pd

        try:
            params = request_body(record, reasons).get("params")
            model, version = self._load_champion()
            result = model.predict(pd.DataFrame([record]), params=params)
        except self._refusals as exc:
            raise UserError(str(exc.message if hasattr(exc, "message") else exc)) from exc
        answer = {k: (v.item() if hasattr(v, "item") else v) for k, v in result.iloc[0].to_dict().items()}
        return {**answer, VERSION_FIELD: str(version)}
