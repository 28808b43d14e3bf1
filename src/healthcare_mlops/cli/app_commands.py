"""``healthcare-mlops app``: the operations console (Streamlit), started on this machine.

It runs ``streamlit run app/main.py`` from the checkout (the same command Databricks Apps
runs, see app.yaml) with $HEALTHCARE_MLOPS_HOME and $HEALTHCARE_MLOPS_TARGET set from the
global options, prints the console's address and serves until interrupted.
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
from healthcare_mlops.errors import UserError
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


def port_is_free(port: int, address: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def streamlit_command(entry: Path, port: int, address: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    if address:
        command += ["--server.address", address]
    return command


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def console(ctx: typer.Context,
            port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port to serve on."),
            address: str = typer.Option(None, "--address",
                                        help="Interface to listen on (default: every interface)."),
            ) -> None:
    """Start the operations console (Streamlit) on this machine and print its address."""
    from healthcare_mlops.composition import facts

    settings = state(ctx).settings()
    entry = console_entry()
    if not port_is_free(port, address or "0.0.0.0"):  # nosec B104: checks the port is free on every interface; binds nothing
        raise UserError(f"port {port} is in use: choose another with --port")
    env = {**os.environ, HOME_ENV: str(settings.home.resolve()), TARGET_ENV: settings.target,
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    host = address if address and address not in ("0.0.0.0", "::") else "localhost"  # nosec B104: a comparison that picks the address to print; binds nothing
    typer.echo(f"console: http://{host}:{port}  (target {settings.target}, {facts(settings).data}); Ctrl+C stops it")
    sys.stdout.flush()
    process = subprocess.Popen(streamlit_command(entry, port, address), cwd=str(entry.parents[1]), env=env)
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
