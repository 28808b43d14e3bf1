"""The process ``healthcare-mlops serve`` runs: the guarded MLflow scoring server that follows the champion.

It loads the audited champion (``governance/champion.py``), checks every ``CHECK_SECONDS``
in a background thread whether the champion moved (a promotion, an approval, a rollback)
and then loads the new version and swaps it in: requests answered before the swap name
the old version, those after it the new one (``X-Model-Version`` and ``model_version``,
``scoring/http_server.py``). A failed check or load is printed and the server keeps the
version it has. Every request is logged to ``serving_payload`` through ``RequestLog``.

Run as ``python -m healthcare_mlops.runtime.scoring_server --home H --host A --port N``.
"""

from __future__ import annotations

import argparse
import sys
import threading

from healthcare_mlops.scoring.http_server import RequestGuard
from healthcare_mlops.scoring.request_log import RequestLog, Served
from healthcare_mlops.settings import Settings, resolve_settings
from healthcare_mlops.tables import SERVING_PAYLOAD_SPEC

CHECK_SECONDS = 5.0


def load_app(model_name: str, version: str) -> tuple[object, Served, list[str]]:
    """MLflow's scoring app for one registered version, what it serves, and the model's inputs."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    from healthcare_mlops.modeling.pyfunc import model_inputs

    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    inputs = model_inputs(model.metadata.get_input_schema(), model.metadata.metadata) or []
    return scoring_server.init(model), Served(model_name, str(version)), list(inputs)


class ChampionFollower:
    """``current()`` for the guard: the champion's app, swapped when the champion moves.

    ``champion()`` names the version to serve now and ``load(version)`` gives
    ``load_app``'s triple; ``for_settings`` wires the audited champion of a home.
    """

    def __init__(self, champion, load, check_seconds: float = CHECK_SECONDS):
        self._champion, self._load = champion, load
        app, served, self.inputs = load(str(champion()))
        self._current = (app, served)
        self._check_seconds = check_seconds
        self._stopped = threading.Event()

    @classmethod
    def for_settings(cls, settings: Settings, check_seconds: float = CHECK_SECONDS) -> "ChampionFollower":
        from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
        from healthcare_mlops.runtime.serving_endpoint import champion_version

        client = configure_mlflow(settings)
        return cls(lambda: champion_version(settings, client), lambda v: load_app(settings.model_name, v),
                   check_seconds)

    def __call__(self) -> tuple[object, Served]:
        return self._current

    def refresh(self) -> bool:
        """Load and swap in the champion when it is not the version served; whether it swapped."""
        version = str(self._champion())
        if version == self._current[1].version:
            return False
        app, served, _ = self._load(version)
        previous, self._current = self._current[1].version, (app, served)
        print(f"the champion moved: now serving version {version} (was {previous})", flush=True)
        return True

    def follow(self) -> "ChampionFollower":
        threading.Thread(target=self._run, name="champion-follower", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._check_seconds):
            try:
                self.refresh()
            except Exception as exc:     # reported; the server keeps answering with the version it has
                print(f"champion check failed, still serving version {self._current[1].version}: "
                      f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def delta_writer(settings: Settings):
    """``RequestLog``'s write: append rows to the home's ``serving_payload`` Delta table."""
    import pyarrow as pa

    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog

    catalog = DeltaCatalog(settings)

    def write(rows: list[dict]) -> None:
        table = pa.Table.from_pylist(rows, schema=SERVING_PAYLOAD_SPEC.arrow_schema())
        catalog.write(table, SERVING_PAYLOAD_SPEC.name, mode="append",
                      partition_by=list(SERVING_PAYLOAD_SPEC.partition_by))

    return write


def with_shutdown(app, on_shutdown):
    """``app`` answering the ASGI lifespan itself, calling ``on_shutdown`` when the server stops.

    uvicorn re-raises SIGTERM once it has shut down, so code after ``uvicorn.run`` never
    runs; the lifespan's shutdown is the last moment the request log can commit its rows.
    """
    async def lifespan_aware(scope, receive, send):
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
    return lifespan_aware


def guarded_server(settings: Settings, log: bool = True, check_seconds: float = CHECK_SECONDS):
    """(the ASGI app, the follower, the request log or None): the pieces ``main`` runs, for tests too."""
    follower = ChampionFollower.for_settings(settings, check_seconds)
    request_log = RequestLog(delta_writer(settings)).start() if log else None
    return RequestGuard(follower, follower.inputs, request_log), follower, request_log


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-log", action="store_true", help="do not log requests (the benchmark's baseline)")
    args = parser.parse_args(argv)
    app, follower, request_log = guarded_server(resolve_settings(home=args.home), log=not args.no_log)
    follower.follow()

    def stop() -> None:
        follower.stop()
        if request_log is not None:
            request_log.close()

    uvicorn.run(with_shutdown(app, stop), host=args.host, port=args.port, lifespan="on")


if __name__ == "__main__":
    main()
