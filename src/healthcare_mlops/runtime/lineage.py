"""Where code and data came from: the git commit and the training table's version."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_COMMIT_ENV = "HEALTHCARE_MLOPS_GIT_COMMIT"


def git_commit(params: dict | None = None) -> str | None:
    """The commit from the task parameter (the bundle passes ${bundle.git.commit}), the
    environment, or the checkout this package runs from; None when none is known."""
    for value in ((params or {}).get("git_commit"), os.environ.get(GIT_COMMIT_ENV)):
        if value:
            return value
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
