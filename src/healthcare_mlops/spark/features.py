"""The feature step's core: one as-of date's delivered members -> de-identified feature rows.

Pure transforms (DataFrames in, DataFrames out). Every number comes from
``healthcare_mlops.features.definitions`` (the band tables, the obesity threshold, the
Safe Harbor age cap and ZIP3 rules) and ``healthcare_mlops.data.contract`` (valid
ranges); ``band_column`` is the Spark twin of ``definitions.band``, so the formulas are
written once and ``engineer_features`` (pandas, inside the model) computes the same values.

A delivered member whose version in force cannot be featurized goes to the quarantine
under its first failing check, so delivered = feature rows + quarantine rows exactly.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from healthcare_mlops.data.contract import AGE_RANGE
from healthcare_mlops.features.definitions import (AGE_BANDS, BMI_CATEGORIES, FAMILY_SIZE_CATEGORIES,
                                                   MAX_REPORTED_AGE, OBESE_BMI, RESTRICTED_ZIP3)
from healthcare_mlops.spark.scd2 import current_as_of
from healthcare_mlops.spark.validation import record_checks
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE_SPEC, DIM_PATIENTS, ML_INSURANCE_FEATURES_SPEC

KEY = "patient_natural_key"
STAGE = "feature_engineering"
QUARANTINE_SOURCE = DIM_PATIENTS
# The attributes a feature row is built from, taken from the member's version in force.
SOURCE_ATTRIBUTES = ("date_of_birth", "zip_code", "sex", "age", "bmi", "children", "smoker", "region")
# What a quarantine row of this stage may show: de-identified attributes only.
QUARANTINE_RECORD = ("age", "sex", "bmi", "children", "smoker", "region", "zip3", "scd_version")
# Checked in this order after the member's version is found; contract ranges from data/contract.py.
CHECKED_COLUMNS = ("age", "bmi", "children", "smoker", "region")

_FEATURE_TYPES = ML_INSURANCE_FEATURES_SPEC.columns.pairs
_QUARANTINE_TYPES = DATA_QUALITY_QUARANTINE_SPEC.columns.pairs


def band_column(value: Column, bands) -> Column:
    """The label of the band ``value`` falls in, as a Spark ``when`` chain (null stays null).

    ``bands`` is a definitions table of (inclusive lower bound, label) sorted by bound;
    like ``definitions.band``, a value below the first bound gets the first label.
    """
    ordered = sorted(bands, key=lambda item: item[0], reverse=True)
    chain = None
    for lower, label in ordered[:-1]:
        condition = value >= F.lit(lower)
        chain = F.when(condition, F.lit(label)) if chain is None else chain.when(condition, F.lit(label))
    lowest = F.lit(ordered[-1][1])
    chain = lowest if chain is None else chain.otherwise(lowest)
    return F.when(value.isNotNull(), chain)


def age_at(date_of_birth: Column, as_of: dt.date) -> Column:
    """Age in whole years on ``as_of`` (one year less until the birthday has come)."""
    before_birthday = (F.lit(as_of.month) < F.month(date_of_birth)) | (
        (F.lit(as_of.month) == F.month(date_of_birth)) & (F.lit(as_of.day) < F.dayofmonth(date_of_birth)))
    return (F.lit(as_of.year) - F.year(date_of_birth) - before_birthday.cast("int")).cast("int")


def reported_age(age: Column) -> Column:
    """Safe Harbor: every age over 89 is reported as one group, 90."""
    return F.least(age, F.lit(MAX_REPORTED_AGE))


def zip3_column(zip_code: Column) -> Column:
    """First three ZIP digits; a restricted prefix becomes 000; null without a ZIP."""
    prefix = F.substring(F.trim(zip_code), 1, 3)
    return (F.when(zip_code.isNull() | (F.length(F.trim(zip_code)) < 3), F.lit(None).cast("string"))
            .when(prefix.isin(*sorted(RESTRICTED_ZIP3)), F.lit("000"))
            .otherwise(prefix))


def delivered_members(silver: DataFrame, as_of: dt.date) -> DataFrame:
    """The silver rows of ``as_of``'s load, one per member.

    A member delivered by several sources on the same date keeps the row of the last
    source in (as_of_date, source) order, the same row whose attributes dim_patients
    keeps in force for that date.
    """
    last_source = Window.partitionBy(KEY).orderBy(F.col("source").desc())
    return (silver.where(F.col("as_of_date") == F.lit(as_of))
            .withColumn("_source_rank", F.row_number().over(last_source))
            .where(F.col("_source_rank") == 1)
            .drop("_source_rank"))


def _version_in_force(dim: DataFrame, as_of: dt.date) -> DataFrame:
    latest = Window.partitionBy(KEY).orderBy(F.col("scd_version").desc())
    return (current_as_of(dim, as_of)
            .withColumn("_version_rank", F.row_number().over(latest))
            .where(F.col("_version_rank") == 1)
            .select(KEY, *SOURCE_ATTRIBUTES, "scd_version", F.lit(True).alias("_in_dim")))


def _age_checks(as_of: dt.date) -> list[tuple[str, Column, Column]]:
    """Age checks whose reason never shows an age over 89 (Safe Harbor)."""
    age = F.col("_age_years")
    low, high = AGE_RANGE
    shown = F.when(age > F.lit(MAX_REPORTED_AGE - 1), F.lit(f"{MAX_REPORTED_AGE}+")).otherwise(age.cast("string"))
    return [
        ("age", F.lit("missing value (no date_of_birth and no age)"), age.isNull()),
        ("age", F.concat(F.lit(f"age on {as_of.isoformat()} outside {low}-{high}: "), shown),
         F.coalesce((age < F.lit(low)) | (age > F.lit(high)), F.lit(False))),
    ]


def feature_checks(as_of: dt.date) -> list[tuple[str, Column, Column]]:
    """(column, reason, is_bad) in the order they are applied to a delivered member."""
    attribute_checks = [check for check in record_checks(from_raw=False)
                        if check[0] in CHECKED_COLUMNS and check[0] != "age"]
    attribute_checks.sort(key=lambda check: CHECKED_COLUMNS.index(check[0]))
    return [
        (KEY, F.lit(f"no dim_patients version in force on {as_of.isoformat()}"), F.col("_in_dim").isNull()),
        *_age_checks(as_of),
        *attribute_checks,
    ]


def build_features(dim: DataFrame, silver: DataFrame, as_of: dt.date) -> tuple[DataFrame, DataFrame]:
    """(features, rejected) for the members delivered in ``as_of``'s load.

    ``features`` has exactly ``FEATURE_COLUMNS``; ``rejected`` has the quarantine columns,
    one row per member that could not be featurized. Both are reads of one cached
    evaluation.
    """
    load = delivered_members(silver, as_of).select(
        KEY, "annual_charges", *[F.col(c).alias(f"_silver_{c}") for c in SOURCE_ATTRIBUTES])
    joined = load.join(_version_in_force(dim, as_of), KEY, "left")
    # Without a version in force the silver row's attributes describe the member in the
    # quarantine record; otherwise every attribute is the version's. (One select per
    # step: a chain of withColumn calls costs a plan analysis each.)
    attributes = joined.select(
        KEY, "annual_charges", "scd_version", "_in_dim", "_silver_age",
        *[F.when(F.col("_in_dim"), F.col(c)).otherwise(F.col(f"_silver_{c}")).alias(c)
          for c in SOURCE_ATTRIBUTES])
    # Without a date of birth (an ingested file) the load's own age is current; the
    # version's age is from the day the version opened.
    aged = attributes.select(
        "*", F.coalesce(age_at(F.col("date_of_birth"), as_of), F.col("_silver_age").cast("int"),
                        F.col("age").cast("int")).alias("_age_years"))
    age, bmi, children, smoker = reported_age(F.col("_age_years")), F.col("bmi"), F.col("children"), F.col("smoker")
    age_bands_scored = [(lower, index) for index, (lower, _) in enumerate(AGE_BANDS, start=1)]
    engineered = aged.select(
        KEY, "annual_charges", "scd_version", "_in_dim", "_age_years", "sex", "bmi", "children", "smoker",
        "region",
        age.alias("age"),
        F.lit(as_of).alias("as_of_date"),
        band_column(age, AGE_BANDS).alias("age_band"),
        band_column(age, age_bands_scored).alias("age_risk_score"),
        band_column(bmi, BMI_CATEGORIES).alias("bmi_category"),
        (smoker & (bmi >= F.lit(OBESE_BMI))).cast("int").alias("smoker_obese"),
        band_column(children, FAMILY_SIZE_CATEGORIES).alias("family_size_category"),
        zip3_column(F.col("zip_code")).alias("zip3"),
    )
    failure = F.lit(None)
    for column, reason, is_bad in reversed(feature_checks(as_of)):
        failure = F.when(is_bad, F.struct(F.lit(column).alias("column_name"), reason.alias("reason"))) \
            .otherwise(failure)
    # Not cached (serverless environment 2 refuses it): each write evaluates its half.
    flagged = engineered.withColumn("_failure", failure)
    features = (flagged.where(F.col("_failure").isNull())
                .select(*[F.col(name).cast(kind).alias(name) for name, kind in _FEATURE_TYPES]))
    quarantine = {
        "stage": F.lit(STAGE),
        "source": F.lit(QUARANTINE_SOURCE),
        "source_row": F.lit(None),
        "record_key": F.col(KEY),
        "column_name": F.col("_failure.column_name"),
        "reason": F.col("_failure.reason"),
        "raw_record": F.to_json(F.struct(*QUARANTINE_RECORD), {"ignoreNullFields": "false"}),
        "as_of_date": F.lit(as_of),
    }
    rejected = (flagged.where(F.col("_failure").isNotNull())
                .select(*[quarantine[name].cast(kind).alias(name) for name, kind in _QUARANTINE_TYPES]))
    return features, rejected
