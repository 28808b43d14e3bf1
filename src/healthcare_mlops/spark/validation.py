"""Record validation: every loaded row is either valid or quarantined with its reason.

Checks run in a fixed order and a bad row is quarantined once, under its first failing
column, so that rows in = rows loaded + rows quarantined holds exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from healthcare_mlops.data.contract import (AGE_RANGE, BMI_RANGE, CHARGES_RANGE, CHILDREN_RANGE, REGIONS,
                                            SEXES, SMOKER_VALUES)

INTEGER_PATTERN = r"^[+-]?\d+$"
NUMBER_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
NON_FINITE_PATTERN = r"^[+-]?(nan|inf|infinity)$"


@dataclass(frozen=True)
class Validated:
    """The rows that passed and the quarantine rows for those that did not."""

    valid: DataFrame
    rejected: DataFrame


def _raw(column: str) -> Column:
    return F.col(f"raw_{column}")


def parse_source_columns(raw: DataFrame) -> DataFrame:
    """Typed columns from the trimmed, lower-cased ``raw_*`` strings of a CSV row.

    A value that does not parse becomes null here; ``validate`` then names it.
    """
    def text(column: str) -> Column:
        return F.lower(F.trim(_raw(column)))

    def number(column: str, pattern: str, spark_type: str) -> Column:
        value = F.trim(_raw(column))
        return F.when(value.rlike(pattern), value.cast(spark_type))

    smoker = F.lit(None).cast("boolean")
    for word, flag in SMOKER_VALUES.items():
        smoker = F.when(text("smoker") == word, F.lit(flag)).otherwise(smoker)
    if "raw_member_id" in raw.columns:      # a file with member ids
        raw = raw.withColumn("member_id", F.trim(_raw("member_id")))
    return (raw.withColumn("age", number("age", INTEGER_PATTERN, "int"))
            .withColumn("sex", text("sex"))
            .withColumn("bmi", number("bmi", NUMBER_PATTERN, "double"))
            .withColumn("children", number("children", INTEGER_PATTERN, "int"))
            .withColumn("smoker", smoker)
            .withColumn("region", text("region"))
            .withColumn("annual_charges", number("charges", NUMBER_PATTERN, "double")))


def _missing(column: str, raw_column: str | None) -> Column:
    if raw_column is None:
        return F.col(column).isNull()
    return _raw(raw_column).isNull() | (F.trim(_raw(raw_column)) == "")


def _unparsed(column: str, raw_column: str | None) -> Column:
    """True when the source had a value that did not parse (only for raw input)."""
    if raw_column is None:
        return F.lit(False)
    return F.col(column).isNull() & ~_missing(column, raw_column)


def _quote(raw_column: str | None, column: str) -> Column:
    value = _raw(raw_column) if raw_column else F.col(column).cast("string")
    return F.concat(F.lit("'"), F.coalesce(value, F.lit("")), F.lit("'"))


def _number_checks(column: str, raw_column: str | None, low, high, whole: bool,
                   required: bool = True, named_bounds: bool = False) -> list[tuple[str, Column]]:
    """Missing, non-finite, unparsed and out-of-range checks of one number, in that order.

    ``named_bounds``: the reason names the bound crossed and where it is set (charges)."""
    kind = "a whole number" if whole else "a number"
    name = raw_column or column   # a CSV row's problem is named by the file's column
    checks = []
    if required:
        checks.append((F.lit("missing value"), _missing(column, raw_column)))
    if raw_column is not None:
        non_finite = F.lower(F.trim(_raw(raw_column))).rlike(NON_FINITE_PATTERN)
        checks.append((F.concat(F.lit("not a finite number: "), _quote(raw_column, column)), non_finite))
        checks.append((F.concat(F.lit(f"not {kind}: "), _quote(raw_column, column)),
                       _unparsed(column, raw_column)))
    else:
        checks.append((F.lit("not a finite number"), F.isnan(F.col(column).cast("double"))))
    value = F.col(column)
    if named_bounds:
        checks.append((F.concat(F.lit(f"{name} below the lower bound {low:,.0f} (data/contract.py), got "),
                                value.cast("string")), F.coalesce(value < F.lit(low), F.lit(False))))
        checks.append((F.concat(F.lit(f"{name} above the upper bound {high:,.0f} (data/contract.py), got "),
                                value.cast("string")), F.coalesce(value > F.lit(high), F.lit(False))))
    else:
        out_of_range = (value < F.lit(low)) | (value > F.lit(high))
        message = F.concat(F.lit(f"{name} outside {low}-{high}: "), value.cast("string"))
        checks.append((message, F.coalesce(out_of_range, F.lit(False))))
    return [(name, reason, condition) for reason, condition in checks]


def _category_checks(column: str, raw_column: str | None, allowed) -> list[tuple[str, Column, Column]]:
    allowed = tuple(allowed)
    not_allowed = ~F.col(column).isin(*allowed) & ~_missing(column, raw_column)
    if raw_column is not None and column == "smoker":
        not_allowed = F.col(column).isNull() & ~_missing(column, raw_column)
    return [
        (column, F.lit("missing value"), _missing(column, raw_column)),
        (column, F.concat(_quote(raw_column, column), F.lit(f" is not one of {', '.join(map(str, allowed))}")),
         F.coalesce(not_allowed, F.lit(False))),
    ]


def record_checks(from_raw: bool, member_ids: bool = False) -> list[tuple[str, Column, Column]]:
    """(column, reason, is_bad) in the order they are applied (``member_ids``: an id is required)."""
    def raw(name: str) -> str | None:
        return name if from_raw else None

    smoker_allowed = tuple(SMOKER_VALUES) if from_raw else (True, False)
    member_id = [("member_id", F.lit("missing value"), _missing("member_id", raw("member_id")))] if member_ids else []
    return [
        *member_id,
        *_number_checks("age", raw("age"), *AGE_RANGE, whole=True),
        *_category_checks("sex", raw("sex"), SEXES),
        *_number_checks("bmi", raw("bmi"), *BMI_RANGE, whole=False),
        *_number_checks("children", raw("children"), *CHILDREN_RANGE, whole=True),
        *_category_checks("smoker", raw("smoker"), smoker_allowed),
        *_category_checks("region", raw("region"), REGIONS),
        *_number_checks("annual_charges", raw("charges"), *CHARGES_RANGE, whole=False, required=False,
                        named_bounds=True),
    ]


def validate(records: DataFrame, duplicate_key: list[str], from_raw: bool, stage: str,
             duplicate_column: str | None = None, member_ids: bool = False,
             key: Callable[[Column], Column] | None = None) -> Validated:
    """Split ``records`` into valid rows and quarantine rows (first failing check per row).

    ``duplicate_key``: columns that must be unique among the rows that pass the record
    checks; the later rows of such a group are quarantined, naming the first row they
    repeat, under ``duplicate_column`` (default: the key's columns joined by ``+``). A row
    that fails a check is never the original of a duplicate: it is quarantined for itself.
    ``member_ids``: rows need a member id. ``key``: makes ``patient_natural_key`` from a row's
    occurrence among the rows alike in ``duplicate_key`` (1 for every valid row).
    """
    record_failure = _first_failure(record_checks(from_raw, member_ids))
    passes = F.col("_record_failure").isNull()
    group = Window.partitionBy(passes, *duplicate_key)
    with_dupes = (records.withColumn("_record_failure", record_failure)
                  .withColumn("_dup_rank", F.row_number().over(group.orderBy("source_row")))
                  .withColumn("_dup_first", F.min("source_row").over(group)))
    if key is not None:
        with_dupes = with_dupes.withColumn("patient_natural_key", key(F.col("_dup_rank")))
    duplicate = [(duplicate_column or "+".join(duplicate_key),
                  F.concat(F.lit("duplicate of source row "), F.col("_dup_first").cast("string")),
                  passes & (F.col("_dup_rank") > 1))]
    failure = F.coalesce(F.col("_record_failure"), _first_failure(duplicate))
    # Not cached (serverless environment 2 refuses it): the valid and the rejected rows are each
    # evaluated by their own write, and both see the same rows, since the records are a table's
    # files or seeded hashes (spark/random_columns.py) and the duplicate ranks are ordered by row.
    flagged = with_dupes.withColumn("_failure", failure).drop("_record_failure", "_dup_rank", "_dup_first")
    valid = flagged.where(F.col("_failure").isNull()).drop("_failure")
    rejected = (flagged.where(F.col("_failure").isNotNull())
                .select(F.lit(stage).alias("stage"), "source", "source_row",
                        F.col("patient_natural_key").alias("record_key"),
                        F.col("_failure.column_name").alias("column_name"),
                        F.col("_failure.reason").alias("reason"),
                        F.col("raw_record"), "as_of_date"))
    return Validated(valid=valid, rejected=rejected)


def _first_failure(checks: list[tuple[str, Column, Column]]) -> Column:
    """The (column_name, reason) struct of the first check that fails, null when all pass."""
    failure = F.lit(None)
    for column, reason, is_bad in reversed(checks):
        failure = F.when(is_bad, F.struct(F.lit(column).alias("column_name"), reason.alias("reason"))) \
            .otherwise(failure)
    return failure
