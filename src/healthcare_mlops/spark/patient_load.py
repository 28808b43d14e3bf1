"""Load patient records: validate, store the load in silver, quarantine the rest, rebuild the SCD2 dimension.

These are the shell functions behind ``healthcare-mlops data generate`` and ``data ingest``.
Each table write is one atomic commit. silver_patients and the quarantine replace only
this load's partition (as-of date and source), and dim_patients is rebuilt from the
whole of silver, so running the same load twice leaves the same three tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from healthcare_mlops.data.contract import (QUARANTINE_COLUMNS, QUARANTINE_SCHEMA_DDL, SILVER_COLUMNS,
                                            SILVER_SCHEMA_DDL, SOURCE_COLUMNS)
from healthcare_mlops.data.csv_source import read_insurance_csv
from healthcare_mlops.data.scenarios import get_scenario
from healthcare_mlops.settings import Settings
from healthcare_mlops.spark.generator import GENERATOR_SOURCE, generate_load
from healthcare_mlops.spark.scd2 import build_dim_patients, state_before
from healthcare_mlops.runtime.catalog import TableCatalog, table_catalog
from healthcare_mlops.runtime.spark_session import get_spark
from healthcare_mlops.spark.validation import parse_source_columns, validate
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, DIM_PATIENTS, SILVER_PATIENTS

INGEST_KEY_PREFIX = "ING-"


@dataclass(frozen=True)
class LoadReport:
    """What one load did; rows_in = rows_loaded + rows_quarantined always holds."""

    source: str
    as_of_date: str
    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    current_members: int
    dim_versions: int

    def as_dict(self) -> dict:
        return asdict(self)


def _store_load(catalog: TableCatalog, valid: DataFrame, rejected: DataFrame,
                as_of: dt.date, source: str, stage: str) -> LoadReport:
    n_loaded = catalog.write(valid.select(*SILVER_COLUMNS), SILVER_PATIENTS, mode="replace_partition",
                             partition={"as_of_date": as_of, "source": source}, partition_by=["as_of_date"])
    n_quarantined = catalog.write(rejected.select(*QUARANTINE_COLUMNS), DATA_QUALITY_QUARANTINE,
                                  mode="replace_partition",
                                  partition={"stage": stage, "source": source, "as_of_date": as_of},
                                  partition_by=["as_of_date"])
    dim = build_dim_patients(catalog.read(SILVER_PATIENTS)).cache()
    catalog.write(dim, DIM_PATIENTS, mode="overwrite")
    counts = dim.agg(F.count("*").alias("versions"),
                     F.sum(F.col("is_current_record").cast("int")).alias("current")).first()
    dim.unpersist()
    return LoadReport(source=source, as_of_date=as_of.isoformat(), rows_in=n_loaded + n_quarantined,
                      rows_loaded=n_loaded, rows_quarantined=n_quarantined,
                      current_members=int(counts["current"] or 0), dim_versions=int(counts["versions"]))


def _previous_generated_load(catalog: TableCatalog, as_of: dt.date):
    """The generated members' state before ``as_of`` and the date of the load before it."""
    if not catalog.exists(DIM_PATIENTS):
        return None, None
    dim = catalog.read(DIM_PATIENTS, [("source", "=", GENERATOR_SOURCE)])
    earlier = catalog.distinct_values(SILVER_PATIENTS, "as_of_date",
                                      [("source", "=", GENERATOR_SOURCE), ("as_of_date", "<", as_of)])
    return state_before(dim, as_of), (earlier[-1] if earlier else None)


def generate_patients(settings: Settings, patients: int, seed: int, as_of: dt.date,
                      scenario: str = "baseline") -> LoadReport:
    """Generate one as-of date's member load (first load: the population) and store it."""
    shape = get_scenario(scenario).shape
    spark = get_spark(settings)
    catalog = table_catalog(settings, spark)
    existing, previous_as_of = _previous_generated_load(catalog, as_of)
    load = generate_load(spark, seed, as_of, patients, shape, existing, previous_as_of)
    records = load.withColumn("raw_record", F.to_json(F.struct(*SOURCE_COLUMNS[:-1], "annual_charges")))
    validated = validate(records, ["patient_natural_key"], from_raw=False, stage="generate")
    return _store_load(catalog, validated.valid, validated.rejected, as_of, GENERATOR_SOURCE, stage="generate")


def _malformed_rows(spark: SparkSession, rows: list[dict], source: str, key_prefix: str,
                    as_of: dt.date) -> DataFrame:
    table = pa.table({
        "stage": pa.array(["ingest"] * len(rows), pa.string()),
        "source": pa.array([source] * len(rows), pa.string()),
        "source_row": pa.array([r["source_row"] for r in rows], pa.int64()),
        "record_key": pa.array([f"{key_prefix}{r['source_row']:07d}" for r in rows], pa.string()),
        "column_name": pa.array(["row"] * len(rows), pa.string()),
        "reason": pa.array([r["reason"] for r in rows], pa.string()),
        "raw_record": pa.array([r["raw_record"] for r in rows], pa.string()),
        "as_of_date": pa.array([as_of] * len(rows), pa.date32()),
    })
    return spark.createDataFrame(table.to_pandas(), schema=QUARANTINE_SCHEMA_DDL)


def ingest_csv(settings: Settings, path: str | Path, as_of: dt.date) -> LoadReport:
    """Load a CSV in the public insurance-charges format; members get generated keys only."""
    csv_rows = read_insurance_csv(path)
    spark = get_spark(settings)
    # The whole stem: a cut-off prefix would give two files' members the same keys.
    stem = "".join(ch for ch in Path(path).stem if ch.isalnum()) or "file"
    key_prefix = f"{INGEST_KEY_PREFIX}{stem}-"
    # via pandas: createDataFrame(pyarrow.Table) exists from Spark 4.0, the jobs' runtime has 3.5
    raw = spark.createDataFrame(csv_rows.rows.to_pandas()) if csv_rows.rows.num_rows else spark.createDataFrame(
        [], ", ".join([f"raw_{c} STRING" for c in SOURCE_COLUMNS] + ["source_row BIGINT", "raw_record STRING"]))
    silver_types = dict(part.split() for part in SILVER_SCHEMA_DDL.split(", "))
    parsed = parse_source_columns(raw)
    for column in SILVER_COLUMNS:
        if column not in parsed.columns:
            parsed = parsed.withColumn(column, F.lit(None).cast(silver_types[column]))
    parsed = (parsed.withColumn("patient_natural_key",
                                F.concat(F.lit(key_prefix), F.lpad(F.col("source_row").cast("string"), 7, "0")))
              .withColumn("as_of_date", F.lit(as_of))
              .withColumn("source", F.lit(csv_rows.source)))
    duplicate_key = ["age", "sex", "bmi", "children", "smoker", "region", "annual_charges"]
    # An exact repeat of an earlier line is a problem of the whole row, like a malformed one.
    validated = validate(parsed, duplicate_key, from_raw=True, stage="ingest", duplicate_column="row")
    rejected = validated.rejected.unionByName(
        _malformed_rows(spark, csv_rows.malformed, csv_rows.source, key_prefix, as_of))
    return _store_load(table_catalog(settings, spark), validated.valid, rejected, as_of, csv_rows.source,
                       stage="ingest")
