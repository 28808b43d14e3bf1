"""The local runner with its tasks run in the test's own process, on the suite's classic Spark session.

The runner's plan, parameters (``{{job.run_id}}`` and all), run history and audit rows are the
real ones; only ``task_process.run_task``'s process is left out: each task's job file runs as
``__main__`` here. For tests whose subject is not the process boundary (a job per process costs
a Python and JVM start-up each); the boundary itself is tested by the tests that start processes.
"""

from __future__ import annotations

import collections
import contextlib
import os
import runpy
import sys

import pytest

from healthcare_mlops.bundle.run_states import FAILED, SUCCEEDED
from healthcare_mlops.emulator.task_process import ERROR_TAIL_LINES, failure_message


class StderrTail:
    """Writes go on to ``stream``; the last ``ERROR_TAIL_LINES`` lines are kept, as the runner keeps
    a task process's stderr for the task's error."""

    def __init__(self, stream):
        self.stream, self.lines, self._partial = stream, collections.deque(maxlen=ERROR_TAIL_LINES), ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        *complete, self._partial = (self._partial + text).split("\n")
        self.lines.extend(complete)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):          # isatty, fileno, encoding, ...: the stream's
        return getattr(self.stream, name)

    def error(self, code) -> str:
        """The task's error as the runner words a failed process's: the exit code and stderr's last line first."""
        return failure_message(code, [*self.lines, *([self._partial] if self._partial else [])])


def run_task_in_this_process(task_key, python_file, argv, cwd, env, log_path, echo, timeout, started=None):
    """The runner's ``task_process.run_task`` without the process: the task's job file runs as
    ``__main__`` here, with its argv, working directory and environment, on this process's
    (the suite's classic) Spark session. A non-zero exit is the task's failure, as in a process, its
    error the exit code and the last lines the task wrote to stderr."""
    stderr = StderrTail(sys.stderr)
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        patch.chdir(cwd)
        patch.setattr(sys, "argv", [str(python_file), *argv])
        for name, value in env.items():
            if os.environ.get(name) != value:
                patch.setenv(name, value)
        try:
            runpy.run_path(str(python_file), run_name="__main__")
        except SystemExit as exit_:
            if exit_.code not in (None, 0):
                if not isinstance(exit_.code, int):        # sys.exit("why"): Python prints it, exit code 1
                    print(exit_.code, file=stderr)
                code = exit_.code if isinstance(exit_.code, int) else 1
                return FAILED, code, stderr.error(code)
    return SUCCEEDED, 0, None


def tasks_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on in the test, the runner runs each task with ``run_task_in_this_process``."""
    from healthcare_mlops.emulator import runner

    monkeypatch.setattr(runner, "run_task", run_task_in_this_process)
