"""``healthcare-mlops serve``'s HTTP server: MLflow's scoring server for one model version, guarded.

MLflow's FastAPI app (``mlflow.pyfunc.scoring_server.init``) answers ``/invocations`` and
``/ping`` as ``mlflow models serve`` does; ``RequestGuard`` stands in front of it:

- it reads at most ``MAX_REQUEST_BYTES`` of a request (413 beyond, from ``Content-Length``
  or while reading) and checks it with ``scoring_request.checked_request`` (content type,
  shape, record count, prohibited fields in any spelling): a refusal is a JSON 400 naming the
  field and the rule, before MLflow parses anything;
- every error MLflow answers goes out as JSON with its ``error_code``, ``message`` and
  ``errors`` only: no ``stack_trace``, no ``Failed to predict data '<the input>'`` dump, and a
  failure of the server itself is a JSON 500 that says to look in the server's log;
- every answer says which model version gave it: the ``X-Model-Version`` header, and
  ``model_version`` in the JSON of a successful answer;
- with a ``RequestLog`` every request becomes a ``serving_payload`` row (``scoring/request_log.py``).

The app and version come from ``current()`` on each request, so the server that follows the
champion alias (``runtime/scoring_server.py``) swaps them without a restart.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import traceback
from collections.abc import Callable

from healthcare_mlops.modeling.scoring_request import (MAX_REQUEST_BYTES, RequestRefused, body_too_large,
                                                      checked_request)
from healthcare_mlops.scoring.request_log import RequestLog, Served, accepted_request, payload_row

INVOCATIONS = "/invocations"
SHOWN_MESSAGE = 500       # characters of an MLflow error message passed on
VERSION_HEADER = b"x-model-version"


def public_error(body: bytes, status: int) -> dict:
    """What the caller may see of an error MLflow answered (see the module docstring)."""
    try:
        error = json.loads(body)
    except ValueError:
        error = {"message": body.decode(errors="replace")}
    if not isinstance(error, dict) or status >= 500:
        return {"error_code": "INTERNAL_ERROR", "message": "the scoring server failed on this request; "
                "its log has the cause"}
    message = str(error.get("message", ""))
    message = message.rpartition("Error: ")[2] if message.startswith("Failed to predict data") else message
    return {"error_code": error.get("error_code", "BAD_REQUEST"), "message": message[:SHOWN_MESSAGE],
            **({"errors": error["errors"]} if "errors" in error else {})}


async def _answer(send, status: int, payload: dict, served: Served | None = None) -> bytes:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if served is not None:
        headers.append((VERSION_HEADER, served.version.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return body


def _refusal(refused: RequestRefused) -> dict:
    return json.loads(refused.serialize_as_json())


class RequestGuard:
    """ASGI middleware around MLflow's scoring app (see the module docstring).

    ``current()`` gives (MLflow's app, the ``Served`` version it scores with); ``log``, when
    given, receives a row per request to ``/invocations``.
    """

    def __init__(self, current: Callable[[], tuple[object, Served]], allowed_fields=(), log: RequestLog | None = None):
        self.current = current
        self.allowed_fields = tuple(allowed_fields)
        self.log = log

    async def __call__(self, scope, receive, send):
        app, served = self.current()
        if scope["type"] != "http" or scope["path"] != INVOCATIONS or scope["method"] != "POST":
            return await app(scope, receive, send)
        started, clock = dt.datetime.now(dt.timezone.utc), time.perf_counter()
        status, request, answer = await self._answer(app, served, scope, receive, send)
        if self.log is not None:
            self.log.add(payload_row(status, started, (time.perf_counter() - clock) * 1000, request, answer, served))

    async def _answer(self, app, served: Served, scope, receive, send) -> tuple[int, str | None, bytes]:
        """(status, the request as logged or None when refused, the answer's body) of one request."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
            return 413, None, await _answer(send, 413, _refusal(body_too_large()), served)
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_REQUEST_BYTES:
                return 413, None, await _answer(send, 413, _refusal(body_too_large()), served)
            if not message.get("more_body"):
                break
        try:
            parsed = checked_request(bytes(body), headers.get("content-type"), self.allowed_fields)
        except RequestRefused as refused:       # logged without its body: it may carry a prohibited field
            return 400, None, await _answer(send, 400, _refusal(refused), served)
        status, answer = await self._forward(app, served, scope, bytes(body), send)
        return status, (accepted_request(parsed, self.allowed_fields) if status < 400 else None), answer

    async def _forward(self, app, served: Served, scope, body: bytes, send) -> tuple[int, bytes]:
        """MLflow's answer to the checked request, with the version; an error answer as ``public_error`` has it."""
        replayed = False

        async def receive():
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        start, chunks = {}, []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        try:
            await app(scope, receive, capture)
        except Exception:               # the server's own failure: logged here, a JSON 500 to the caller
            traceback.print_exc(file=sys.stderr)
            return 500, await _answer(send, 500, public_error(b"", 500), served)
        status = start.get("status", 500)
        if status >= 400:
            return status, await _answer(send, status, public_error(b"".join(chunks), status), served)
        payload = json.loads(b"".join(chunks))
        if isinstance(payload, dict):
            payload["model_version"] = served.version
        return status, await _answer(send, status, payload, served)
