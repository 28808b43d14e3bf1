"""Real-time scoring through a Databricks Model Serving endpoint, with databricks-sdk.

The endpoint's route of ``scoring/realtime.py`` (same interface: ``score(record) -> dict``,
``route``): the request and the answer's shape are that module's; what an SDK error means
is this one's.
"""

from __future__ import annotations

from collections.abc import Callable

from healthcare_mlops.errors import UserError
from healthcare_mlops.scoring.realtime import first_prediction, request_body


class ServingEndpointScorer:
    """A Databricks Model Serving endpoint, queried with databricks-sdk."""

    needs_registered_champion = False

    def __init__(self, client_factory: Callable[[], object], name: str):
        self._client_factory = client_factory
        self.name = name

    @property
    def route(self) -> str:
        return f"Model Serving endpoint {self.name}"

    def score(self, record: dict, reasons: bool = False) -> dict:
        from databricks.sdk.errors import DatabricksError, NotFound

        if not self.name:
            raise UserError("this target has no serving endpoint (the bundle variable serving_endpoint_name is empty)")
        try:
            client = self._client_factory()
            if reasons:     # the SDK's query() has no pyfunc ``params``: the same request, posted as is
                answer = client.api_client.do("POST", f"/serving-endpoints/{self.name}/invocations",
                                              body=request_body(record, reasons))
                return first_prediction(answer, (answer or {}).get("served_model_name") or "not said by the endpoint")
            response = client.serving_endpoints.query(name=self.name, dataframe_records=[record])
        except NotFound:
            raise UserError(f"serving endpoint {self.name} does not exist yet: it is created when a model version "
                            "first becomes champion (run ml_training_pipeline, or approve a challenger)") from None
        except DatabricksError as exc:       # 400 names the field (the model's input contract), 403, 503 ...
            raise UserError(f"serving endpoint {self.name} refused the request: {exc}") from None
        return first_prediction({"predictions": response.predictions},
                                response.served_model_name or "not said by the endpoint")
