"""The README's "Your own member file" walkthrough as a script CI runs (ci/own_member_file.sh).

The commands are read from the README's section itself, so the walkthrough people follow and
the one CI runs cannot drift apart. ``./quickstart`` is run from the checkout; the console
command, which serves until stopped, is started in the background on a free port and must
answer its health check.
"""

from __future__ import annotations

import argparse
import re
import shlex
import socket
from pathlib import Path

SECTION = "Your own member file"
CONSOLE_COMMAND = "healthcare-mlops app"
CONSOLE_START_SECONDS = 300        # a loaded CI machine starts Streamlit slowly


def section_commands(readme: str, title: str = SECTION) -> list[str]:
    """The commands of the ```bash blocks under ``## title`` (comments and blank lines dropped)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    if not match:
        raise SystemExit(f"README has no section '## {title}'")
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", match.group(1), re.M | re.S):
        for line in block.splitlines():
            command = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if command:
                commands.append(command)
    if not commands:
        raise SystemExit(f"README section '## {title}' has no ```bash block")
    return commands


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def script(commands: list[str], repo: Path, port: int) -> str:
    """Bash that runs ``commands`` in order, failing on the first that fails; the console on ``port``."""
    lines = ["set -euxo pipefail"]
    for command in commands:
        if command.startswith("./quickstart"):
            command = shlex.quote(str(repo / "quickstart")) + command[len("./quickstart"):]
        if command.startswith(CONSOLE_COMMAND):
            lines += [f"{command} --port {port} > console.log 2>&1 &",
                      "console=$!",
                      "trap 'kill $console 2>/dev/null || true' EXIT",
                      f"for _ in $(seq {CONSOLE_START_SECONDS}); do "
                      f"curl -fsS localhost:{port}/_stcore/health && break; sleep 1; done",
                      f"curl -fsS -o /dev/null localhost:{port}/ || {{ cat console.log; exit 1; }}"]
        else:
            lines.append(command)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readme", type=Path)
    args = parser.parse_args()
    repo = args.readme.resolve().parent
    print(script(section_commands(args.readme.read_text(encoding="utf-8")), repo, free_port()), end="")


if __name__ == "__main__":
    main()
