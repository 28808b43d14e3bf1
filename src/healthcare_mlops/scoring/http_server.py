"""``healthcare-mlops serve``'s HTTP server: MLflow's scoring server for one model version, guarded.

MLflow's FastAPI app (``mlflow.pyfunc.scoring_server.init``) answers ``/invocations`` and
``/ping`` as ``mlflow models serve`` does; ``RequestGuard`` stands in front of it:

- it reads at most ``MAX_REQUEST_BYTES`` of a request (413 beyond, from ``Content-Length``
  or while reading) and checks it with ``scoring_request.checked_request`` (content type,
  shape, record count, prohibited fields in any spelling): a refusal is a JSON 400 naming the
  field and the rule, before MLflow parses anything;
- every error MLflow answers goes out as JSON with its ``error_code``, ``message`` and
  ``errors`` only: no ``stack_trace``, no ``Failed to predict data '<the input>'`` dump, and a
  failure of the server itself is a JSON 500 that says to look in the server's log.

Run as ``python -m healthcare_mlops.scoring.http_server --model-uri models:/<name>/<version>``.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback

from healthcare_mlops.modeling.scoring_request import (MAX_REQUEST_BYTES, RequestRefused, body_too_large,
                                                      checked_request)

INVOCATIONS = "/invocations"
SHOWN_MESSAGE = 500       # characters of an MLflow error message passed on


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


async def _answer(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _refusal(refused: RequestRefused) -> dict:
    return json.loads(refused.serialize_as_json())


class RequestGuard:
    """ASGI middleware around MLflow's scoring app (see the module docstring)."""

    def __init__(self, app, allowed_fields=()):
        self.app = app
        self.allowed_fields = tuple(allowed_fields)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != INVOCATIONS or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
            return await _answer(send, 413, _refusal(body_too_large()))
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_REQUEST_BYTES:
                return await _answer(send, 413, _refusal(body_too_large()))
            if not message.get("more_body"):
                break
        try:
            checked_request(bytes(body), headers.get("content-type"), self.allowed_fields)
        except RequestRefused as refused:
            return await _answer(send, 400, _refusal(refused))
        await self._forward(scope, bytes(body), send)

    async def _forward(self, scope, body: bytes, send) -> None:
        """MLflow's answer to the checked request; an error answer as ``public_error`` has it."""
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
            await self.app(scope, receive, capture)
        except Exception:               # the server's own failure: logged here, a JSON 500 to the caller
            traceback.print_exc(file=sys.stderr)
            return await _answer(send, 500, public_error(b"", 500))
        status = start.get("status", 500)
        if status >= 400:
            return await _answer(send, status, public_error(b"".join(chunks), status))
        await send(start)
        await send({"type": "http.response.body", "body": b"".join(chunks)})


def guarded_app(model_uri: str):
    """MLflow's scoring app for ``model_uri`` behind a ``RequestGuard`` that lets the model's own inputs pass."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    from healthcare_mlops.modeling.pyfunc import model_inputs

    model = mlflow.pyfunc.load_model(model_uri)
    inputs = model_inputs(model.metadata.get_input_schema(), model.metadata.metadata) or []
    return RequestGuard(scoring_server.init(model), inputs)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(guarded_app(args.model_uri), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
