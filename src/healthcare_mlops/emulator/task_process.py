"""One task of a local job run as its own process: start it, copy its output, read its exit.

The runner (runner.py) decides which task runs when and with what; this module only runs
one, as a ``spark_python_task`` starts: ``[sys.executable, <python_file>, *parameters]`` in
its own process group, its output copied to the task's log (and the console), the last
lines of its stderr kept as the error.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from healthcare_mlops.bundle.run_states import FAILED, SUCCEEDED, TIMED_OUT
from healthcare_mlops.emulator import run_guard

ERROR_TAIL_LINES = 20      # stderr lines kept as a task's error


class Pump(threading.Thread):
    """Copies one of a task's output streams to the log file, the console and a tail buffer."""

    def __init__(self, source: IO[str], log: IO[str], lock: threading.Lock, echo: IO[str] | None,
                 prefix: str, tail: collections.deque | None):
        super().__init__(daemon=True)
        self.source, self.log, self.lock, self.echo, self.prefix, self.tail = source, log, lock, echo, prefix, tail

    def run(self) -> None:
        for line in self.source:
            with self.lock:
                self.log.write(line)
                self.log.flush()
                if self.echo is not None:
                    self.echo.write(f"{self.prefix}{line}" if line.endswith("\n") else f"{self.prefix}{line}\n")
                    self.echo.flush()
            if self.tail is not None and line.strip():
                self.tail.append(line.rstrip("\n"))


def run_task(task_key: str, python_file: Path, argv: list, cwd: Path, env: dict, log_path: Path,
             echo: bool, timeout: float | None, started=None) -> tuple[str, int | None, str | None]:
    """Run one task in its own process group; (status, exit code, error). ``started(pid)`` is
    told the group's id; the group is ended on a timeout and when the runner is stopped."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(python_file), *argv]
    tail: collections.deque = collections.deque(maxlen=ERROR_TAIL_LINES)
    lock = threading.Lock()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = run_guard.start_task(command, str(cwd), env)
        prefix = f"[{task_key}] "
        pumps = [Pump(process.stdout, log, lock, sys.stdout if echo else None, prefix, None),
                 Pump(process.stderr, log, lock, sys.stderr if echo else None, prefix, tail)]
        for pump in pumps:
            pump.start()
        try:
            if started is not None:
                started(process.pid)
            exit_code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run_guard.end_group(process)
            for pump in pumps:
                pump.join(timeout=5)
            return TIMED_OUT, None, f"timed out after {timeout:.0f} s (timeout_seconds)"
        except BaseException:
            run_guard.end_group(process)
            raise
        for pump in pumps:
            pump.join(timeout=30)
    if exit_code == 0:
        return SUCCEEDED, 0, None
    return FAILED, exit_code, failure_message(exit_code, list(tail))


def failure_message(exit_code: int, stderr_tail: list[str]) -> str:
    """A failed task's error: its exit code and the last line it wrote to stderr first, then that tail."""
    cause = stderr_tail[-1].strip() if stderr_tail else "(no output on stderr)"
    return "\n".join([f"exit code {exit_code}: {cause}", *stderr_tail])
