"""``healthcare-mlops serve``: the MLflow scoring server for the champion, on this machine."""

from __future__ import annotations

import os
import sys

import typer

from healthcare_mlops.cli.context import state
from healthcare_mlops.cli.listen import EXPOSE_OPTION, HOST_OPTION, checked_host
from healthcare_mlops.runtime.serving_endpoint import DEFAULT_SCORING_PORT


def serve(ctx: typer.Context,
          port: int = typer.Option(DEFAULT_SCORING_PORT, "--port", min=1, max=65535, help="Port to listen on."),
          host: str = HOST_OPTION, expose: bool = EXPOSE_OPTION) -> None:
    """Serve the champion over HTTP (POST /invocations, GET /ping), following promotions; log each request."""
    from healthcare_mlops.composition import require_this_machine
    from healthcare_mlops.runtime.serving_endpoint import endpoint_name, local_server_command

    checked_host(host, expose, "the scoring server")
    # the refusal for a workspace target needs no model name, so it asks the workspace nothing
    settings = state(ctx).settings(resolve_model_name=False)
    require_this_machine(settings, "serve (the scoring server)", "the champion is served by the Model Serving "
                         f"endpoint '{endpoint_name(settings, resolve=False) or '(serving_endpoint_name not set)'}'")
    argv, env, version = local_server_command(settings, port, host)
    url = f"http://{host}:{port}"
    typer.echo(f"serving {settings.model_name} version {version} (the champion now; a promotion is followed) at "
               f"{url}/invocations (health: {url}/ping); each request is logged to serving_payload; Ctrl-C stops it")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)
