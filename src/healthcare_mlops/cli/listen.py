"""Which network interface a server started from the CLI listens on: the console and the scoring server.

Both listen on the loopback interface unless ``--host`` names another. Any other interface
serves everyone who can reach this machine (the console with the roles of the local user),
so it is refused unless ``--expose`` says that is meant.
"""

from __future__ import annotations

import ipaddress
import socket

import typer

from healthcare_mlops.errors import UserError

LOOPBACK = "127.0.0.1"
HOST_OPTION = typer.Option(LOOPBACK, "--host", help="Interface to listen on (default: loopback only; "
                                                     "another one needs --expose).")
EXPOSE_OPTION = typer.Option(False, "--expose", help="Allow a --host other than loopback: every machine "
                                                     "that can reach it is served.")


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` stands for is a loopback address (0.0.0.0 and :: are every interface)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except socket.gaierror as exc:
        raise UserError(f"--host {host} does not resolve to an address ({exc.strerror})") from exc
    return all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)


def checked_host(host: str, expose: bool, what: str) -> bool:
    """Refuse a non-loopback ``host`` without ``--expose``; return whether ``what`` is exposed."""
    if is_loopback(host):
        return False
    if not expose:
        raise UserError(f"--host {host} would serve {what} to every machine that can reach this one; "
                        f"add --expose if that is meant (default --host {LOOPBACK})")
    return True
