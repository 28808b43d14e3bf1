"""The model_reproduction job: rebuild a registered version from its lineage and compare.

The console's "Reproduce" starts this job (reproduction retrains, and on Databricks the
time-travel reads need Spark); the CLI's ``governance reproduce`` runs the same core in
process. A difference, or a version that can no longer be read, fails the task (exit 1)
after the outcome is tagged on the version and written to the audit log.
"""

from __future__ import annotations

from healthcare_mlops.composition import Runtime
from healthcare_mlops.errors import UserError
from healthcare_mlops.governance.champion import audited_champion
from healthcare_mlops.governance.reproduce import Reproduction, reproduce_version
from healthcare_mlops.governance.reproduction_report import format_report


def run(runtime: Runtime, version: str | None = None) -> Reproduction:
    """Reproduce ``version`` (default: the champion); a UserError when it is not reproduced."""
    if not version:
        version = audited_champion(runtime.audit_log)      # never a half-moved alias (governance/champion.py)
        if version is None:
            raise UserError(f"{runtime.settings.model_name} has no champion to reproduce; pass --model_version")
    report = reproduce_version(runtime.reproduction_sources(), runtime.identity, version)
    print(format_report(report))
    if not report.passed:
        raise UserError(f"version {version} is not reproduced: {report.result}")
    return report
