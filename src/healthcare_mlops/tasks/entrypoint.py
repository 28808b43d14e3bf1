"""The shared body of every ``jobs/*.py`` entry point.

A job file is one line around ``main``: the task's ``--name value`` parameters become
``params`` and, through the settings, the process's one ``Runtime`` (composition.py), the task
runs, and a ``UserError`` (bad parameter, missing table, an as-of date without a load ...) ends
the process with exit code 1 and a one-line ``error: ...`` on stderr. Any other exception
propagates with its traceback (exit code 1 from Python), so a real failure is never disguised
as a user error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from healthcare_mlops.composition import Runtime, task_runtime
from healthcare_mlops.errors import UserError
from healthcare_mlops.tasks.arguments import parse_task_arguments


def main(run: Callable[[dict, Runtime], object], argv: Sequence[str] | None = None) -> None:
    """Parse the task parameters, build the settings and the runtime and call ``run(params, runtime)``."""
    try:
        params = parse_task_arguments(list(sys.argv[1:] if argv is None else argv))
        run(params, task_runtime(params))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
