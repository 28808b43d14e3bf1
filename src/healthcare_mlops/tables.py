"""The table registry: every table's logical name, defined once.

A logical name becomes ``<catalog>.<schema>.<table>`` for the target; jobs, the CLI,
the console and the tests all take table names from here.
"""

from __future__ import annotations

from dataclasses import dataclass

SILVER_PATIENTS = "silver_patients"
DIM_PATIENTS = "dim_patients"
DATA_QUALITY_QUARANTINE = "data_quality_quarantine"
JOB_RUNS = "job_runs"

ALL_TABLES = (
    SILVER_PATIENTS,
    DIM_PATIENTS,
    DATA_QUALITY_QUARANTINE,
    JOB_RUNS,
)


@dataclass(frozen=True)
class TableRegistry:
    """Turns logical table names into fully qualified names for one catalog and schema."""

    catalog: str
    schema: str

    def fqn(self, logical_name: str) -> str:
        if logical_name not in ALL_TABLES:
            raise KeyError(f"unknown table '{logical_name}' (known: {', '.join(ALL_TABLES)})")
        return f"{self.catalog}.{self.schema}.{logical_name}"

    @staticmethod
    def names() -> tuple[str, ...]:
        return ALL_TABLES
