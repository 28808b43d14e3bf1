"""``healthcare-mlops app``: the operations console (Streamlit), started on this machine.

It runs Streamlit on ``app/main.py`` from the checkout (the script Databricks Apps runs, see
app.yaml), through ``app/serve.py`` so the pages' libraries are imported before the first visit,
with $HEALTHCARE_MLOPS_HOME and $HEALTHCARE_MLOPS_TARGET set from the global options, prints
the console's address and serves until interrupted. It listens on loopback only unless
``--host`` and ``--expose`` say otherwise (``cli/listen.py``); an exposed console gets
$HEALTHCARE_MLOPS_EXPOSED, so ``identity.local_identity`` makes its default role ``viewer``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import typer

from healthcare_mlops.cli.context import state
from healthcare_mlops.cli.listen import EXPOSE_OPTION, HOST_OPTION, LOOPBACK, checked_host
from healthcare_mlops.errors import UserError
from healthcare_mlops.identity import EXPOSED_ENV
from healthcare_mlops.settings import HOME_ENV

CONSOLE_ENTRY = Path("app") / "main.py"
TARGET_ENV = "HEALTHCARE_MLOPS_TARGET"
DEFAULT_PORT = 8501


def console_entry() -> Path:
    """``app/main.py`` of the checkout the bundle is read from."""
    from healthcare_mlops.bundle.definition import load_bundle

    root = load_bundle().root
    entry = root / CONSOLE_ENTRY
    if not entry.is_file():
        raise UserError(f"the console's source {CONSOLE_ENTRY} is not in {root}: run from a checkout of the "
                        "project (the wheel carries the jobs' code, not the console)")
    return entry


def port_is_free(port: int, address: str) -> bool:
    """Nothing listens on ``port``. With SO_REUSEADDR, as Streamlit's server binds: connections of a
    console stopped a moment ago (TIME_WAIT) do not keep its port from the restarted one."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def streamlit_command(entry: Path, port: int, address: str) -> list[str]:
    """Always with ``--server.address``: without it Streamlit listens on every interface. Through
    ``app/serve.py`` (run from the checkout's root): Streamlit with the pages' libraries imported first."""
    return [sys.executable, "-m", "app.serve", "run", str(entry), "--server.port", str(port),
            "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "viewer",          # no "Deploy" button in the header
            "--client.disableDataExport", "true"]      # no table's own CSV download: only the role's export


def console_environment(settings, exposed: bool) -> dict:
    """The Streamlit process's environment: the target, the home, and whether it is exposed (its default role)."""
    env = {**os.environ, HOME_ENV: str(settings.home.resolve()), TARGET_ENV: settings.target,
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    env.pop(EXPOSED_ENV, None)
    if exposed:
        env[EXPOSED_ENV] = "1"
    return env


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def console(ctx: typer.Context,
            port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port to serve on."),
            host: str = HOST_OPTION, expose: bool = EXPOSE_OPTION) -> None:
    """Start the operations console (Streamlit) on this machine and print its address."""
    from healthcare_mlops.composition import facts

    exposed = checked_host(host, expose, "the console")
    settings = state(ctx).settings()
    entry = console_entry()
    if not port_is_free(port, host):
        raise UserError(f"port {port} is in use: choose another with --port")
    shown = "localhost" if host == LOOPBACK else host
    note = "; exposed: the local role defaults to viewer" if exposed else ""
    typer.echo(f"console: http://{shown}:{port}  (target {settings.target}, {facts(settings).data}{note}); "
               "Ctrl+C stops it")
    sys.stdout.flush()
    process = subprocess.Popen(streamlit_command(entry, port, host), cwd=str(entry.parents[1]),
                               env=console_environment(settings, exposed))
    for stop in (signal.SIGINT, signal.SIGTERM):    # stopping this command stops the server too
        signal.signal(stop, _interrupt)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        code = 0
    if code:
        raise UserError(f"the console stopped (streamlit exit code {code})")
