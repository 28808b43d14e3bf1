"""The local runner with its tasks run in the test's own process, on the suite's classic Spark session.

The runner's plan, parameters (``{{job.run_id}}`` and all), run history and audit rows are the
real ones; only ``task_process.run_task``'s process is left out: each task's job file runs as
``__main__`` here. For tests whose subject is not the process boundary (a job per process costs
a Python and JVM start-up each); the boundary itself is tested by the tests that start processes.
"""

from __future__ import annotations

import os
import runpy
import sys

import pytest

from healthcare_mlops.bundle.run_states import FAILED, SUCCEEDED


def run_task_in_this_process(task_key, python_file, argv, cwd, env, log_path, echo, timeout, started=None):
    """The runner's ``task_process.run_task`` without the process: the task's job file runs as
    ``__main__`` here, with its argv, working directory and environment, on this process's
    (the suite's classic) Spark session. A non-zero exit is the task's failure, as in a process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setattr(sys, "argv", [str(python_file), *argv])
        for name, value in env.items():
            if os.environ.get(name) != value:
                patch.setenv(name, value)
        try:
            runpy.run_path(str(python_file), run_name="__main__")
        except SystemExit as exit_:
            if exit_.code not in (None, 0):
                return FAILED, 1, f"exit code 1: {exit_.code}"
    return SUCCEEDED, 0, None


def tasks_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on in the test, the runner runs each task with ``run_task_in_this_process``."""
    from healthcare_mlops.emulator import runner

    monkeypatch.setattr(runner, "run_task", run_task_in_this_process)
