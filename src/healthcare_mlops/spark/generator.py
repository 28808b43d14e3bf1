"""Synthetic member loads, generated in Spark so that they scale on a cluster.

A load is the full extract of the members delivered on one as-of date. The first load
creates the population; a later load carries every existing member forward (with new
attribute values where the scenario or everyday churn changes them) and adds the members
who joined since the previous load. Every value is a hash of (seed, member, tag), so
a load is identical for the same (seed, as-of) however Spark partitions it.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from healthcare_mlops.data import population as pop
from healthcare_mlops.data.contract import REGIONS, SILVER_COLUMNS
from healthcare_mlops.data.population import Shape
from healthcare_mlops.spark.random_columns import categorical, normal, pick, uniform

GENERATOR_SOURCE = "generator"
KEY_PREFIX = "PNK-"
ROWS_PER_PARTITION = 250_000


def member_key(index: Column) -> Column:
    return F.concat(F.lit(KEY_PREFIX), F.lpad(index.cast("string"), 9, "0"))


def member_index(key: Column) -> Column:
    return F.substring(key, len(KEY_PREFIX) + 1, 9).cast("long")


def region_shares(northeast_delta: float) -> tuple[float, ...]:
    """Region shares with the northeast raised by ``northeast_delta``, the others scaled down."""
    base_ne = pop.REGION_SHARES["northeast"]
    scale = (1.0 - base_ne - northeast_delta) / (1.0 - base_ne)
    return tuple(share + northeast_delta if region == "northeast" else share * scale
                 for region, share in pop.REGION_SHARES.items())


def _clip(column: Column, low: float, high: float) -> Column:
    return F.least(F.greatest(column, F.lit(low)), F.lit(high))


def _age(seed: int, u, shape: Shape) -> Column:
    top = pop.AGE_MAIN[1]
    if shape.min_age is not None:
        return (F.lit(shape.min_age) + F.floor(u("age") * (top - shape.min_age + 1))).cast("int")
    young_low, young_high = pop.AGE_YOUNG
    main_low = pop.AGE_MAIN[0]
    return F.when(u("age-mix") < pop.AGE_YOUNG_SHARE,
                  F.lit(young_low) + F.floor(u("age") * (young_high - young_low + 1))) \
        .otherwise(F.lit(main_low) + F.floor(u("age") * (top - main_low + 1))).cast("int")


def _enrollment(u, as_of: dt.date, period_start: dt.date, first_load: bool) -> Column:
    as_of_col = F.lit(as_of)
    if first_load:
        recent = F.floor(u("tenure") * pop.FIRST_LOAD_NEW_MEMBER_DAYS)
        longer = pop.FIRST_LOAD_NEW_MEMBER_DAYS + F.floor(
            u("tenure") * (pop.MAX_TENURE_DAYS - pop.FIRST_LOAD_NEW_MEMBER_DAYS))
        days = F.when(u("tenure-mix") < pop.FIRST_LOAD_NEW_MEMBER_SHARE, recent).otherwise(longer)
    else:
        days = F.floor(u("tenure") * max((as_of - period_start).days, 1))
    return F.date_sub(as_of_col, days.cast("int"))


def new_members(spark: SparkSession, seed: int, start_index: int, count: int, as_of: dt.date,
                period_start: dt.date, shape: Shape, first_load: bool) -> DataFrame:
    """``count`` members who join with this load: attributes, identity and enrollment date."""
    partitions = max(1, -(-count // ROWS_PER_PARTITION))
    df = spark.range(start_index, start_index + count, numPartitions=partitions) \
        .withColumnRenamed("id", "member_index")
    idx = F.col("member_index")

    def u(tag: str) -> Column:
        return uniform(seed, "member", tag, idx)

    smoker_share = pop.SMOKER_SHARE + shape.smoker_share_delta
    bmi = F.lit(pop.BMI_MEAN + shape.bmi_delta) + F.lit(pop.BMI_SD) * normal(seed, "member", "bmi", idx)
    return (
        df.withColumn("age", _age(seed, u, shape))
        .withColumn("sex", F.when(u("sex") < 0.5, F.lit("female")).otherwise(F.lit("male")))
        .withColumn("smoker", u("smoker") < F.lit(smoker_share))
        .withColumn("region", categorical(u("region"), REGIONS, region_shares(shape.northeast_share_delta)))
        .withColumn("children", categorical(u("children"), tuple(range(len(pop.CHILDREN_SHARES))),
                                            pop.CHILDREN_SHARES).cast("int"))
        .withColumn("bmi", F.round(_clip(bmi, *pop.BMI_CLIP), 2))
        .withColumn("enrollment_date", _enrollment(u, as_of, period_start, first_load))
        .withColumn("date_of_birth", F.date_sub(F.add_months(F.lit(as_of), -12 * F.col("age")),
                                                F.floor(u("birthday") * 365).cast("int")))
        .withColumn("patient_natural_key", member_key(idx))
        .withColumn("member_id", F.concat(F.lit("M"), F.lpad(
            F.pmod(F.xxhash64(F.lit(seed), F.lit("member-id"), idx), F.lit(10**10)).cast("string"), 10, "0")))
        .withColumn("first_name", pick(u("first-name"), pop.FIRST_NAMES))
        .withColumn("last_name", pick(u("last-name"), pop.LAST_NAMES))
        .withColumn("ssn", F.format_string("%03d-%02d-%04d",
                                           (F.lit(900) + F.floor(u("ssn-area") * 100)).cast("int"),
                                           (F.lit(1) + F.floor(u("ssn-group") * 99)).cast("int"),
                                           (F.lit(1) + F.floor(u("ssn-serial") * 9999)).cast("int")))
    )


def with_zip_code(df: DataFrame, seed: int) -> DataFrame:
    """A 5-digit ZIP that depends on the member and the region, so a move changes it."""
    idx = F.col("member_index")
    zip3 = F.lit(None).cast("string")
    for region, prefixes in pop.ZIP3_BY_REGION.items():
        zip3 = F.when(F.col("region") == region, pick(uniform(seed, "zip3", region, idx), prefixes)) \
            .otherwise(zip3)
    last_two = F.lpad(F.floor(uniform(seed, "zip2", idx) * 100).cast("int").cast("string"), 2, "0")
    return df.withColumn("zip_code", F.concat(zip3, last_two))


def evolve_members(current: DataFrame, seed: int, as_of: dt.date, shape: Shape,
                   smoker_share: float, northeast_share: float) -> DataFrame:
    """Existing members in a later load: age on, everyday churn, then the scenario's shift.

    ``smoker_share`` and ``northeast_share`` are the current shares among the delivered
    members; the flip rates are chosen so that the share moves by exactly the scenario's
    delta in expectation.
    """
    idx = F.col("member_index")
    day = as_of.isoformat()

    def u(tag: str) -> Column:
        return uniform(seed, "change", day, tag, idx)

    age_now = F.floor(F.months_between(F.lit(as_of), F.col("date_of_birth")) / 12).cast("int")
    df = current.withColumn("age", F.coalesce(age_now, F.col("age")))
    if shape.min_age is not None:
        df = df.where(F.col("age") >= shape.min_age)
    if shape.delivered_members is not None:
        df = df.withColumn("_order", u("delivered")).orderBy("_order").limit(shape.delivered_members) \
            .drop("_order")
    remeasured = F.col("bmi") + F.lit(pop.BASELINE_BMI_REMEASURE_SD) * normal(seed, "change", day, "bmi", idx)
    df = df.withColumn("bmi", F.when(u("remeasure") < pop.BASELINE_BMI_REMEASURE_SHARE,
                                     F.round(_clip(remeasured, *pop.BMI_CLIP), 2)).otherwise(F.col("bmi")))
    if shape.bmi_delta:
        shifted = F.col("bmi") + F.lit(shape.bmi_delta) + F.lit(0.5) * normal(seed, "drift", day, "bmi", idx)
        df = df.withColumn("bmi", F.round(_clip(shifted, pop.BMI_CLIP[0], pop.BMI_CLIP[1] + shape.bmi_delta), 2))
    if shape.smoker_share_delta:
        rate = shape.smoker_share_delta / max(1e-9, 1.0 - smoker_share)
        df = df.withColumn("smoker", F.col("smoker") | (u("smoker") < F.lit(rate)))
    if shape.northeast_share_delta:
        rate = shape.northeast_share_delta / max(1e-9, 1.0 - northeast_share)
        df = df.withColumn("region", F.when(u("move") < F.lit(rate), F.lit("northeast"))
                           .otherwise(F.col("region")))
    return df


def with_charges(df: DataFrame, seed: int, shape: Shape, period_start: dt.date) -> DataFrame:
    """Annual charges from the member's attributes plus a member-level right-skewed residual.

    Members who enrolled after ``period_start`` joined in the latest period: their
    charges are not known yet (null) and arrive with a later load.
    """
    idx = F.col("member_index")
    smoker, obese = F.col("smoker"), F.col("bmi") >= F.lit(pop.OBESE_BMI)
    base = F.when(smoker & obese, F.lit(pop.CHARGE_BASE_SMOKER_OBESE)) \
        .when(smoker, F.lit(pop.CHARGE_BASE_SMOKER)).otherwise(F.lit(pop.CHARGE_BASE_NON_SMOKER))
    tail = F.lit(pop.NOISE_TAIL_OFFSET) - F.lit(pop.NOISE_TAIL_MEAN_EXCESS) * F.log(uniform(seed, "noise-tail", idx))
    spread = F.when(smoker, F.lit(pop.NOISE_SMOKER_SPREAD)).otherwise(F.lit(1.0))
    body = F.lit(pop.NOISE_BODY_MEAN) + F.lit(pop.NOISE_BODY_SD) * spread * normal(seed, "noise-body", idx)
    in_tail = ~smoker & (uniform(seed, "noise-mix", idx) < pop.NOISE_TAIL_SHARE_NON_SMOKER)
    noise = F.when(in_tail, tail).otherwise(body)
    charges = base + F.lit(pop.CHARGE_PER_YEAR_OF_AGE) * F.col("age") \
        + F.lit(pop.CHARGE_PER_CHILD) * F.col("children") + noise
    charges = F.round(F.greatest(charges, F.lit(pop.CHARGE_FLOOR)) * F.lit(shape.charge_factor), 2)
    joined_this_period = F.col("enrollment_date") > F.lit(period_start)
    return df.withColumn("annual_charges", F.when(joined_this_period, F.lit(None).cast("double"))
                         .otherwise(charges))


def _summary(current: DataFrame):
    """Existing members: count, highest index, smoker and northeast shares, in one Spark job."""
    return current.agg(F.count(F.lit(1)).alias("members"),
                       F.max("member_index").alias("max_index"),
                       F.avg(F.col("smoker").cast("double")).alias("smoker_share"),
                       F.avg((F.col("region") == "northeast").cast("double")).alias("northeast_share")).first()


def generate_load(spark: SparkSession, seed: int, as_of: dt.date, new_member_count: int, shape: Shape,
                  existing: DataFrame | None = None, previous_as_of: dt.date | None = None) -> DataFrame:
    """One as-of date's extract with silver_patients' columns.

    ``existing`` holds the generated members' state before ``as_of`` (dim_patients
    columns); None or empty makes this the first load.
    """
    current = summary = None
    if existing is not None:
        current = existing.withColumn("member_index", member_index(F.col("patient_natural_key")))
        summary = _summary(current)
    if summary is None or summary["members"] == 0:
        period_start = as_of - dt.timedelta(days=pop.FIRST_LOAD_NEW_MEMBER_DAYS)
        load = new_members(spark, seed, 0, new_member_count, as_of, period_start, shape, first_load=True)
    else:
        period_start = previous_as_of or as_of - dt.timedelta(days=pop.FIRST_LOAD_NEW_MEMBER_DAYS)
        next_index = summary["max_index"] + 1
        evolved = evolve_members(current, seed, as_of, shape,
                                 smoker_share=float(summary["smoker_share"] or 0.0),
                                 northeast_share=float(summary["northeast_share"] or 0.0))
        joining = 0 if shape.delivered_members is not None else new_member_count
        joiners = new_members(spark, seed, next_index, joining, as_of, period_start, shape, first_load=False)
        load = evolved.unionByName(joiners, allowMissingColumns=True)
    load = with_charges(with_zip_code(load, seed), seed, shape, period_start)
    return (load.withColumn("as_of_date", F.lit(as_of))
            .withColumn("source", F.lit(GENERATOR_SOURCE))
            .withColumn("source_row", F.col("member_index"))
            .select(*SILVER_COLUMNS))
