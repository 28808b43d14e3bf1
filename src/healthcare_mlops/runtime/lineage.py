"""Where code and environment came from: the git commit, whether the tree was dirty, the packages.

A registered version records these (governance/lineage.py) so that ``governance reproduce``
can say whether it rebuilds the model with the same code and the same libraries.
"""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path

GIT_COMMIT_ENV = "HEALTHCARE_MLOPS_GIT_COMMIT"
# The distributions whose versions shape a trained model (fit, numerics, serialization, I/O).
SELF_DISTRIBUTION = "healthcare-mlops"
MODEL_PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "mlflow", "pyarrow", SELF_DISTRIBUTION)
_HERE = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    """Output of a git command in this package's checkout; None outside one."""
    try:
        result = subprocess.run(["git", *args], cwd=_HERE, capture_output=True, text=True,  # nosec B603, B607  # fixed git arguments, no shell
                                timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):    # no git here (a wheel on a cluster): the commit is unknown,
        return None                                  # which the lineage records and reproduce reports
    return result.stdout.strip() if result.returncode == 0 else None


def git_commit(params: dict | None = None) -> str | None:
    """The commit from the task parameter (the bundle passes ${bundle.git.commit}), the
    environment, or the checkout this package runs from; None when none is known."""
    for value in ((params or {}).get("git_commit"), os.environ.get(GIT_COMMIT_ENV)):
        if value:
            return value
    return _git("rev-parse", "HEAD") or None


def git_dirty(params: dict | None = None) -> bool | None:
    """Whether the checkout this package runs from has uncommitted changes to tracked files.

    None when unknown: a deployed wheel (the bundle passes the commit, not a checkout)."""
    if (params or {}).get("git_commit") or os.environ.get(GIT_COMMIT_ENV):
        return None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def installed_versions(packages=MODEL_PACKAGES) -> dict[str, str]:
    """The installed version of each package ("not installed" when absent)."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
