"""The table catalog of a target: ``table_catalog(settings)``, the one way code reaches a table.

The interface is ``TableCatalog`` (runtime/catalog_base.py); the laptop's implementation is
``DeltaCatalog`` (runtime/delta_catalog.py), Databricks' is ``UnityCatalog``
(runtime/unity_catalog.py). Which one serves a target is decided here, once.
"""

from __future__ import annotations

from healthcare_mlops.governance.audit import AuditLog
from healthcare_mlops.governance.thresholds import approval_mode
from healthcare_mlops.runtime.catalog_base import TableCatalog, partition_predicate
from healthcare_mlops.settings import Settings

__all__ = ["TableCatalog", "arrow_member_load", "audit_log", "partition_predicate", "table_catalog"]


def table_catalog(settings: Settings, spark=None) -> TableCatalog:
    """The catalog of the target: Delta folders under the home locally, Unity Catalog on Databricks.

    ``spark`` is the session the job already has (None: the catalog starts one locally when a
    Spark read is asked for; on Databricks without Spark, the SQL warehouse serves it)."""
    if settings.is_local:
        from healthcare_mlops.runtime.delta_catalog import DeltaCatalog

        return DeltaCatalog(settings, spark)
    from healthcare_mlops.runtime.unity_catalog import UnityCatalog

    return UnityCatalog(settings, spark)


def audit_log(settings: Settings, catalog: TableCatalog | None = None) -> AuditLog:
    """The target model's audit log (governance/audit.py) in ``catalog`` (default: the target's catalog)."""
    return AuditLog(catalog or table_catalog(settings), settings.model_name, approval_mode(settings.variables))


def arrow_member_load(settings: Settings) -> bool:
    """Whether a CSV member load runs in Arrow and DuckDB (a laptop: no JVM to start) or in Spark (Databricks).

    The one place this is decided (issue 26: Spark's start-up alone is minutes on a laptop)."""
    return settings.is_local
