"""Load patient records: validate, store the load in silver, quarantine the rest, rebuild the SCD2 dimension.

These are the shell functions behind ``healthcare-mlops data generate`` and ``data ingest``.

A load is all or nothing. It writes three tables in three Delta commits (the quarantine
and silver_patients replace only this load's partition, as-of date and source;
dim_patients is rebuilt from the whole of silver), framed by the member-load journal
(``data/load_journal.py``): ``started`` with the versions before, ``committed`` after
the last write. A load that fails with an exception rolls its partitions back to those
versions and rebuilds dim before the error propagates. A load whose process is killed
cannot do that, so every load first heals: an unfinished load in the journal is rolled
back the same way, before anything else is read or written. So after any failure the
three tables hold what they held before it, at the latest when the next load starts.

Loads hold the catalog's exclusive right to write silver_patients: of two concurrent
loads one runs, the other fails at once with a conflict error and writes nothing.

A source is identified by what it is: a CSV by its resolved path, its members' keys
by a hash of that path and the file's content hash, so two files never share keys.
Loading other content under a source and date already loaded (another file at the same
path, the generator with another seed or size) is refused unless ``replace`` is set;
loading the same content again gives the same tables.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from healthcare_mlops.data.contract import QUARANTINE_COLUMNS, SILVER_COLUMNS, SOURCE_COLUMNS
from healthcare_mlops.data.csv_source import StagedCsv, staged_insurance_csv
from healthcare_mlops.data.load_journal import COMMITTED, ROLLED_BACK, STARTED, Load, loaded_fingerprint, unfinished
from healthcare_mlops.data.scenarios import get_scenario
from healthcare_mlops.errors import UserError
from healthcare_mlops.failpoints import failpoint
from healthcare_mlops.settings import Settings
from healthcare_mlops.spark.generator import GENERATOR_SOURCE, generate_load
from healthcare_mlops.spark.scd2 import build_dim_patients, state_before
from healthcare_mlops.runtime.catalog import TableCatalog, table_catalog
from healthcare_mlops.runtime.spark_session import get_spark
from healthcare_mlops.spark.validation import parse_source_columns, validate
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, DIM_PATIENTS, SILVER_PATIENTS, SILVER_PATIENTS_SPEC

INGEST_KEY_PREFIX = "ING-"
SOURCE_ID_HEX = 16                      # 64 bits of sha256: keys of two sources never meet
AFTER_QUARANTINE = "load:after_quarantine"
AFTER_SILVER = "load:after_silver"
AFTER_DIM = "load:after_dim"


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


def _partitions(load: Load) -> dict:
    """The partition each table's share of ``load`` lives in."""
    return {DATA_QUALITY_QUARANTINE: {"stage": load.stage, "source": load.source, "as_of_date": load.as_of_date},
            SILVER_PATIENTS: {"as_of_date": load.as_of_date, "source": load.source}}


def _rebuild_dim(catalog: TableCatalog) -> tuple[int, int]:
    """dim_patients from the whole of silver; (current members, versions), counted in the
    table as written (one column read back, not a second build; serverless refuses caching)."""
    catalog.write(build_dim_patients(catalog.read(SILVER_PATIENTS)), DIM_PATIENTS, mode="overwrite")
    counts = catalog.read(DIM_PATIENTS, columns=["is_current_record"]).agg(
        F.count("*").alias("versions"), F.sum(F.col("is_current_record").cast("int")).alias("current")).first()
    return int(counts["current"] or 0), int(counts["versions"])


def _roll_back(catalog: TableCatalog, load: Load) -> None:
    """Put ``load``'s partitions back as they were before it, rebuild dim, and journal it."""
    versions = {DATA_QUALITY_QUARANTINE: load.quarantine_version, SILVER_PATIENTS: load.silver_version}
    for name, partition in _partitions(load).items():
        if not catalog.exists(name):
            continue
        where = [(column, "=", value) for column, value in partition.items()]
        before = catalog.read(name, where, version=versions[name]) if versions[name] is not None \
            else catalog.read(name, where).limit(0)                # the table is this load's: empty it
        catalog.write(before, name, mode="replace_partition", partition=partition, partition_by=["as_of_date"])
    if catalog.exists(SILVER_PATIENTS):
        _rebuild_dim(catalog)
    load.record(catalog, ROLLED_BACK)


def heal(catalog: TableCatalog) -> list[Load]:
    """Roll back every load the journal shows unfinished (its process died); the loads rolled back."""
    loads = unfinished(catalog)
    for load in loads:
        _roll_back(catalog, load)
    return loads


def _check_source(catalog: TableCatalog, load: Load, replace: bool) -> None:
    """Refuse other content under a source and date already loaded, unless it is a replace."""
    earlier = loaded_fingerprint(catalog, load.source, load.as_of_date)
    if earlier is None or earlier == load.fingerprint or replace:
        return
    raise UserError(f"{load.source} was already loaded for {load.as_of_date.isoformat()} with other content "
                    f"({earlier} then, {load.fingerprint} now); pass --replace to replace that load's "
                    "members and quarantined rows")


def _store(catalog: TableCatalog, load: Load, valid: DataFrame, rejected: DataFrame,
           rows_read: int | None) -> LoadReport:
    """Write the load's three tables between its journal's ``started`` and ``committed``.

    ``rows_read``: the records the source held; a load whose rows loaded + quarantined
    differ is rolled back rather than committed (nothing silently lost)."""
    load = dataclasses.replace(load, silver_version=catalog.version(SILVER_PATIENTS),
                               quarantine_version=catalog.version(DATA_QUALITY_QUARANTINE))
    load.record(catalog, STARTED)
    partitions = _partitions(load)
    try:
        n_quarantined = catalog.write(rejected.select(*QUARANTINE_COLUMNS), DATA_QUALITY_QUARANTINE,
                                      mode="replace_partition", partition=partitions[DATA_QUALITY_QUARANTINE],
                                      partition_by=["as_of_date"])
        failpoint(AFTER_QUARANTINE)
        n_loaded = catalog.write(valid.select(*SILVER_COLUMNS), SILVER_PATIENTS, mode="replace_partition",
                                 partition=partitions[SILVER_PATIENTS], partition_by=["as_of_date"])
        failpoint(AFTER_SILVER)
        if rows_read is not None and n_loaded + n_quarantined != rows_read:
            raise RuntimeError(f"{load.source}: read {rows_read} rows but loaded {n_loaded} + quarantined "
                               f"{n_quarantined}; the load is rolled back")
        current, versions = _rebuild_dim(catalog)
        failpoint(AFTER_DIM)
        load.record(catalog, COMMITTED, (n_loaded + n_quarantined, n_loaded, n_quarantined))
    except BaseException:
        _roll_back(catalog, load)           # then the failure itself propagates
        raise
    return LoadReport(source=load.source, as_of_date=load.as_of_date.isoformat(),
                      rows_in=n_loaded + n_quarantined, rows_loaded=n_loaded, rows_quarantined=n_quarantined,
                      current_members=current, dim_versions=versions)


def _load(settings: Settings, load: Load, replace: bool,
          frames: Callable[[SparkSession, TableCatalog], tuple[DataFrame, DataFrame]],
          rows_read: int | None = None) -> LoadReport:
    """Holding the lock: heal, check the source, build (valid, rejected) with ``frames``, store them.

    The lock is taken before Spark starts, so a second load fails in a second, not after
    its JVM has started."""
    catalog = table_catalog(settings)
    with catalog.exclusive(SILVER_PATIENTS, f"loading {load.source} as of {load.as_of_date.isoformat()}"):
        spark = get_spark(settings)
        heal(catalog)
        _check_source(catalog, load, replace)
        valid, rejected = frames(spark, catalog)
        return _store(catalog, load, valid, rejected, rows_read)


def _previous_generated_load(catalog: TableCatalog, as_of: dt.date):
    """The generated members' state before ``as_of`` and the date of the load before it."""
    if not catalog.exists(DIM_PATIENTS):
        return None, None
    dim = catalog.read(DIM_PATIENTS, [("source", "=", GENERATOR_SOURCE)])
    earlier = catalog.distinct_values(SILVER_PATIENTS, "as_of_date",
                                      [("source", "=", GENERATOR_SOURCE), ("as_of_date", "<", as_of)])
    return state_before(dim, as_of), (earlier[-1] if earlier else None)


def generate_patients(settings: Settings, patients: int, seed: int, as_of: dt.date,
                      scenario: str = "baseline", replace: bool = False) -> LoadReport:
    """Generate one as-of date's member load (first load: the population) and store it."""
    shape = get_scenario(scenario).shape

    def frames(spark: SparkSession, catalog: TableCatalog) -> tuple[DataFrame, DataFrame]:
        existing, previous_as_of = _previous_generated_load(catalog, as_of)
        load = generate_load(spark, seed, as_of, patients, shape, existing, previous_as_of)
        records = load.withColumn("raw_record", F.to_json(F.struct(*SOURCE_COLUMNS[:-1], "annual_charges")))
        validated = validate(records, ["patient_natural_key"], from_raw=False, stage="generate")
        return validated.valid, validated.rejected

    fingerprint = f"seed={seed} patients={patients} scenario={scenario}"
    return _load(settings, Load.new(GENERATOR_SOURCE, "generate", as_of, fingerprint), replace, frames)


def source_key_prefix(staged: StagedCsv) -> str:
    """The key prefix of a CSV's members: a hash of its path and its content, unique per source."""
    identity = hashlib.sha256(f"{staged.path}\n{staged.fingerprint}".encode()).hexdigest()[:SOURCE_ID_HEX]
    return f"{INGEST_KEY_PREFIX}{identity}-"


def line_key(key_prefix: str, line: Column) -> Column:
    """A CSV member's key: the source's prefix and the line number, at least 7 digits.

    Not ``lpad``: it cuts a longer value, so line 10,000,001 would get line 1,000,000's key."""
    return F.concat(F.lit(key_prefix), F.format_string("%07d", line))


def _ingest_frames(spark: SparkSession, staged: StagedCsv, as_of: dt.date) -> tuple[DataFrame, DataFrame]:
    """(valid, rejected) of a staged CSV: typed, validated, malformed rows quarantined as whole rows."""
    source, key_prefix = str(staged.path), source_key_prefix(staged)
    rows = (spark.read.parquet(str(staged.staged))
            .withColumn("record_key", line_key(key_prefix, F.col("source_row")))
            .withColumn("as_of_date", F.lit(as_of))
            .withColumn("source", F.lit(source)))
    # The fields as read, in file order: what a quarantined row shows.
    fields = F.to_json(F.array(*[F.col(f"raw_{name}") for name in staged.header]))
    parsed = parse_source_columns(rows.where(F.col("malformed_reason").isNull())
                                  .withColumn("raw_record", fields)
                                  .withColumnRenamed("record_key", "patient_natural_key"))
    silver_types = SILVER_PATIENTS_SPEC.columns.types
    for column in SILVER_COLUMNS:
        if column not in parsed.columns:
            parsed = parsed.withColumn(column, F.lit(None).cast(silver_types[column]))
    duplicate_key = ["age", "sex", "bmi", "children", "smoker", "region", "annual_charges"]
    # An exact repeat of an earlier line is a problem of the whole row, like a malformed one.
    validated = validate(parsed, duplicate_key, from_raw=True, stage="ingest", duplicate_column="row")
    malformed = (rows.where(F.col("malformed_reason").isNotNull())
                 .select(F.lit("ingest").alias("stage"), "source", "source_row", "record_key",
                         F.lit("row").alias("column_name"), F.col("malformed_reason").alias("reason"),
                         F.col("malformed_record").alias("raw_record"), "as_of_date"))
    return validated.valid, validated.rejected.unionByName(malformed)


def ingest_csv(settings: Settings, path: str | Path, as_of: dt.date, replace: bool = False) -> LoadReport:
    """Load a CSV in the public insurance-charges format; members get generated keys only."""
    with staged_insurance_csv(path, settings.staging_dir(Path(path))) as staged:
        load = Load.new(str(staged.path), "ingest", as_of, f"sha256:{staged.fingerprint}")
        return _load(settings, load, replace, lambda spark, _catalog: _ingest_frames(spark, staged, as_of),
                     staged.rows)
