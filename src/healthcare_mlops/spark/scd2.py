"""dim_patients as a type-2 slowly changing dimension of the silver loads.

The dimension is a function of silver_patients: a new version opens whenever a tracked
attribute differs from the member's previous load. A load dated after every version merges
into it (``merge_dim_patients``): only its new members and the members whose tracked
attributes changed are written, whatever the table's size, and the result is what folding
the whole of silver gives (``build_dim_patients``). A rerun of a date, or a load dated
before the latest version, can move later versions, so it folds silver again.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from healthcare_mlops.data.contract import DIM_ATTRIBUTE_COLUMNS, DIM_SCD2_COLUMNS, SCD2_TRACKED
from healthcare_mlops.tables import DIM_PATIENTS, SILVER_PATIENTS

KEY = "patient_natural_key"
# Stored by the date each version starts: a load appends its versions as a new partition, and
# closing a member's previous version rewrites only the partitions those versions are in.
PARTITION_BY = ["effective_from"]


def _fingerprint() -> F.Column:
    return F.sha2(F.concat_ws("|", *[F.coalesce(F.col(c).cast("string"), F.lit("<null>"))
                                     for c in SCD2_TRACKED]), 256)


def build_dim_patients(silver: DataFrame) -> DataFrame:
    """Fold every load of every member into SCD2 versions.

    ``effective_to`` is the exclusive end (the next version's ``effective_from``), null
    for the current version; exactly one row per member has ``is_current_record``.
    """
    by_load = Window.partitionBy(KEY).orderBy("as_of_date", "source")
    changes = (silver.withColumn("_fp", _fingerprint())
               .withColumn("_prev_fp", F.lag("_fp").over(by_load))
               .where(F.col("_prev_fp").isNull() | (F.col("_prev_fp") != F.col("_fp"))))
    by_version = Window.partitionBy(KEY).orderBy("as_of_date", "source")
    return (changes
            .withColumn("effective_from", F.col("as_of_date"))
            .withColumn("effective_to", F.lead("as_of_date").over(by_version))
            .withColumn("is_current_record", F.col("effective_to").isNull())
            .withColumn("scd_version", F.row_number().over(by_version))
            .select(*DIM_ATTRIBUTE_COLUMNS, *DIM_SCD2_COLUMNS))


def state_before(dim: DataFrame, as_of: dt.date) -> DataFrame:
    """Each member's version in force on the day before ``as_of`` (ignores ``as_of``'s own load)."""
    day = F.lit(as_of)
    return dim.where((F.col("effective_from") < day)
                     & (F.col("effective_to").isNull() | (F.col("effective_to") >= day)))


def current_as_of(dim: DataFrame, as_of: dt.date) -> DataFrame:
    """Each member's version in force on ``as_of``."""
    day = F.lit(as_of)
    return dim.where((F.col("effective_from") <= day)
                     & (F.col("effective_to").isNull() | (F.col("effective_to") > day)))


def merge_dim_patients(catalog, load_rows: DataFrame, as_of: dt.date) -> None:
    """Merge one load's rows (silver columns) into dim_patients through ``catalog``.

    The load's keys are unique (validation). New members get version 1 (on the first load
    every member: no window, no shuffle); a member whose tracked attributes differ from their current
    version gets the next version from ``as_of``, and the version before is closed on
    ``as_of``; unchanged members are not written. Two commits (the new versions, then the
    closed ones), inside the load's journal, which restores the table's version on failure."""
    changed, arriving = [], load_rows.withColumn("scd_version", F.lit(None).cast("int"))  # the first load
    if catalog.exists(DIM_PATIENTS):
        dim = catalog.read(DIM_PATIENTS)
        latest = dim.agg(F.max("effective_from")).first()[0]
        if latest is not None and latest >= as_of:
            catalog.write(build_dim_patients(catalog.read(SILVER_PATIENTS)), DIM_PATIENTS, mode="overwrite",
                          partition_by=PARTITION_BY)
            return
        current = dim.where(F.col("is_current_record")).select(KEY, "scd_version",
                                                               _fingerprint().alias("_current_fp"))
        arriving = (load_rows.withColumn("_fp", _fingerprint()).join(current, KEY, "left")
                    .where(F.col("_current_fp").isNull() | (F.col("_current_fp") != F.col("_fp"))))
        changed = [row[KEY] for row in arriving.where(F.col("_current_fp").isNotNull()).select(KEY).collect()]
    new_versions = (arriving.withColumn("effective_from", F.lit(as_of))
                    .withColumn("effective_to", F.lit(None).cast("date"))
                    .withColumn("is_current_record", F.lit(True))
                    .withColumn("scd_version", (F.coalesce(F.col("scd_version"), F.lit(0)) + 1).cast("int"))
                    .select(*DIM_ATTRIBUTE_COLUMNS, *DIM_SCD2_COLUMNS))
    catalog.write(new_versions, DIM_PATIENTS, mode="append", partition_by=PARTITION_BY)
    if changed:
        catalog.update(DIM_PATIENTS, {"effective_to": as_of, "is_current_record": False},
                       [(KEY, "in", changed), ("is_current_record", "=", True), ("effective_from", "<", as_of)])
