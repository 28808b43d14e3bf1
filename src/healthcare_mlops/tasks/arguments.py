"""Task parameters as the bundle passes them: ``--name value`` pairs in ``spark_python_task``.

Every job receives ``--target ${bundle.target}``, ``--catalog ${var.catalog}`` and
``--schema ${var.schema}`` plus its own parameters (``settings.REQUIRED_TASK_PARAMETERS``),
so no job hard-codes where it runs; ``settings.task_settings`` turns them into settings.
"""

from __future__ import annotations

from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import REQUIRED_TASK_PARAMETERS


def parse_task_arguments(argv: list[str]) -> dict[str, str]:
    """``["--catalog", "c", "--as_of", "2026-01-01"]`` -> ``{"catalog": "c", "as_of": "2026-01-01"}``."""
    params: dict[str, str] = {}
    items = list(argv)
    while items:
        flag = items.pop(0)
        if not flag.startswith("--") or len(flag) < 3:
            raise UserError(f"task parameter '{flag}' is not of the form --name value")
        name, _, inline = flag[2:].partition("=")
        if inline:
            params[name] = inline
        elif items and not items[0].startswith("--"):
            params[name] = items.pop(0)
        else:
            params[name] = ""
    missing = [name for name in REQUIRED_TASK_PARAMETERS if not params.get(name)]
    if missing:
        raise UserError(f"missing task parameters: {', '.join('--' + m for m in missing)}")
    return params

