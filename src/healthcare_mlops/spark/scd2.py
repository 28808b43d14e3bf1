"""dim_patients as a type-2 slowly changing dimension folded from the silver loads.

The dimension is a pure function of silver_patients: a new version opens whenever a
tracked attribute differs from the member's previous load. Rebuilding it from silver
makes every load idempotent (re-running a date gives the same dimension) and repairs
a dimension left stale by a run that died between its two writes.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from healthcare_mlops.data.contract import DIM_ATTRIBUTE_COLUMNS, DIM_SCD2_COLUMNS, SCD2_TRACKED

KEY = "patient_natural_key"


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
