"""Named crash points for proving that multi-step writes survive a kill.

With ``HEALTHCARE_MLOPS_FAILPOINT=<name>`` in the environment the process dies at that
point as ``kill -9`` would (no cleanup, no exception handlers), so a test can show that
the next run repairs what was left half-done. Unset, a failpoint does nothing.
"""

from __future__ import annotations

import os

FAILPOINT_ENV = "HEALTHCARE_MLOPS_FAILPOINT"
KILLED_EXIT_CODE = 137


def failpoint(name: str) -> None:
    if os.environ.get(FAILPOINT_ENV) == name:
        os._exit(KILLED_EXIT_CODE)
