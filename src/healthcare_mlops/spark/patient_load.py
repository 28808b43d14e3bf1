"""Load patient records: validate, store the load in silver, quarantine the rest, merge the SCD2 dimension.

The core behind ``healthcare-mlops data generate``, ``data ingest`` and the ``load_members``
job. The task (``tasks/load_members.py``) checks the role, opens the catalog, takes its lock,
starts Spark and stages the file; the functions here take that catalog, frames and typed
parameters, and read or write tables only through the catalog they are given.

A load is all or nothing. It writes the quarantine and silver_patients (replacing only this
load's partition, as-of date and source) and merges its new and changed members into
dim_patients, framed by the member-load journal (``data/load_journal.py``): ``started``
with the versions before and who loads, ``committed`` after the last write. A load that
fails with an exception puts its partitions and dim_patients back to those versions before
the error propagates; a killed load is put back the same way by the next load, before it
reads or writes anything else.

A member's key comes from what the member is, never from where the row was:

- a file with a member-id column (``member_id`` unless configured): ``MBR-`` and a keyed
  hash of the id, so a member keeps one key across files and dates;
- a file without: ``ING-`` and a hash of the row's values (as parsed: `` 18 , MALE`` is
  ``18,male``) and its occurrence among identical rows, so the same rows in any order and
  under any file name get the same keys.

Loading other content under a source and date already loaded is refused unless ``replace``
is set; loading the same content again gives the same tables; the same content under another
path for the same date is refused, and a member another file already brought for that date is
quarantined (silver holds a member once per date).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from healthcare_mlops.data.contract import QUARANTINE_COLUMNS, SILVER_COLUMNS, SOURCE_COLUMNS
from healthcare_mlops.data.csv_source import StagedCsv
from healthcare_mlops.data.load_journal import (COMMITTED, ROLLED_BACK, STARTED, Load, loaded_fingerprint,
                                                loaded_sources, unfinished)
from healthcare_mlops.data.scenarios import get_scenario
from healthcare_mlops.errors import UserError
from healthcare_mlops.failpoints import failpoint
from healthcare_mlops.spark.generator import GENERATOR_SOURCE, generate_load
from healthcare_mlops.spark.scd2 import PARTITION_BY as DIM_PARTITION_BY
from healthcare_mlops.spark.scd2 import build_dim_patients, merge_dim_patients, state_before
from healthcare_mlops.spark.validation import parse_source_columns, validate
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, DIM_PATIENTS, SILVER_PATIENTS, SILVER_PATIENTS_SPEC

INGEST_KEY_PREFIX = "ING-"              # a member of a file without ids: from the row's values
MEMBER_KEY_PREFIX = "MBR-"              # a member of a file with ids: from the id
KEY_HEX = 20                            # 80 bits of sha256: two members' keys never meet
# The parsed values a row without an id is known by (and an exact repeat is found by).
CONTENT_COLUMNS = ("age", "sex", "bmi", "children", "smoker", "region", "annual_charges")
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


@dataclass(frozen=True)
class MemberKeys:
    """How a file's member-id column is named and the key of the hash that makes its members' keys.

    ``secret`` is the key's text, for an engine without a secret service (a laptop's DuckDB or Spark).
    ``secret_reference`` (scope, key), on a workspace: Spark reads the key itself with SQL's ``secret()``,
    so its value is never a literal of the load's plan, which a run's Spark UI and query profile show
    to everyone who may view the run."""

    id_column: str
    secret: str
    secret_reference: tuple[str, str] | None = None


@dataclass(frozen=True)
class StoreSteps:
    """What ``_store`` does in the frames' engine: pick columns, merge dim_patients, count it.

    Spark's (``SPARK_STEPS``) on Databricks; Arrow and DuckDB's on a laptop
    (``runtime/arrow_member_load.py``). The journal, the writes and the rollback are shared."""

    select: Callable          # (frame, column names) -> frame
    merge_dim: Callable       # (catalog, silver filter of the load, as-of date) -> None
    dim_counts: Callable      # (catalog) -> (current members, versions)


def _partitions(load: Load) -> dict:
    """The partition each table's share of ``load`` lives in."""
    return {DATA_QUALITY_QUARANTINE: {"stage": load.stage, "source": load.source, "as_of_date": load.as_of_date},
            SILVER_PATIENTS: {"as_of_date": load.as_of_date, "source": load.source}}


def _dim_counts(catalog) -> tuple[int, int]:
    """(current members, versions) of dim_patients as written (one column read back)."""
    counts = catalog.read(DIM_PATIENTS, columns=["is_current_record"]).agg(
        F.count("*").alias("versions"), F.sum(F.col("is_current_record").cast("int")).alias("current")).first()
    return int(counts["current"] or 0), int(counts["versions"])


def _roll_back(catalog, load: Load) -> None:
    """Put ``load``'s partitions and dim_patients back as they were before it, and journal it."""
    versions = {DATA_QUALITY_QUARANTINE: load.quarantine_version, SILVER_PATIENTS: load.silver_version}
    for name, partition in _partitions(load).items():
        if not catalog.exists(name):
            continue
        where = [(column, "=", value) for column, value in partition.items()]
        before = catalog.read(name, where, version=versions[name]) if versions[name] is not None \
            else catalog.read(name, where).limit(0)                # the table is this load's: empty it
        catalog.write(before, name, mode="replace_partition", partition=partition, partition_by=["as_of_date"])
    if catalog.exists(DIM_PATIENTS) and catalog.version(DIM_PATIENTS) != load.dim_version:
        _restore_dim(catalog, load.dim_version)
    load.record(catalog, ROLLED_BACK)


def _restore_dim(catalog, version: int | None) -> None:
    """dim_patients as it was at ``version``; None (the load made the table): folded from silver as it is."""
    before = build_dim_patients(catalog.read(SILVER_PATIENTS)) if version is None \
        else catalog.read(DIM_PATIENTS, version=version)
    catalog.write(before, DIM_PATIENTS, mode="overwrite", partition_by=DIM_PARTITION_BY)


def heal(catalog) -> list[Load]:
    """Roll back every load the journal shows unfinished (its process died); the loads rolled back."""
    loads = unfinished(catalog)
    for load in loads:
        _roll_back(catalog, load)
    return loads


def _check_source(catalog, load: Load, replace: bool) -> None:
    """Refuse other content under a source and date already loaded (unless it is a replace), and
    the same content under another source for that date (its members would be there twice)."""
    earlier = loaded_fingerprint(catalog, load.source, load.as_of_date)
    if earlier is not None and earlier != load.fingerprint and not replace:
        raise UserError(f"{load.source} was already loaded for {load.as_of_date.isoformat()} with other content "
                        f"({earlier} then, {load.fingerprint} now); pass --replace to replace that load's "
                        "members and quarantined rows")
    twins = [source for source in loaded_sources(catalog, load.fingerprint, load.as_of_date) if source != load.source]
    if twins:
        raise UserError(f"{load.source}: the same content was already loaded for {load.as_of_date.isoformat()} "
                        f"from {twins[0]}; its members are loaded")


def _spark_merge(catalog, where: list[tuple], as_of: dt.date) -> None:
    # The load's rows as silver holds them: not the validation evaluated a third time.
    merge_dim_patients(catalog, catalog.read(SILVER_PATIENTS, where), as_of)


SPARK_STEPS = StoreSteps(select=lambda frame, names: frame.select(*names), merge_dim=_spark_merge,
                         dim_counts=_dim_counts)


def _store(catalog, load: Load, valid, rejected, rows_read: int | None, steps: StoreSteps) -> LoadReport:
    """Write the load's tables between its journal's ``started`` and ``committed``.

    ``rows_read``: the records the source held; a load whose rows loaded + quarantined
    differ is rolled back rather than committed (nothing silently lost)."""
    load = dataclasses.replace(load, silver_version=catalog.version(SILVER_PATIENTS),
                               quarantine_version=catalog.version(DATA_QUALITY_QUARANTINE),
                               dim_version=catalog.version(DIM_PATIENTS))
    load.record(catalog, STARTED)
    partitions = _partitions(load)
    try:
        n_quarantined = catalog.write(steps.select(rejected, QUARANTINE_COLUMNS), DATA_QUALITY_QUARANTINE,
                                      mode="replace_partition", partition=partitions[DATA_QUALITY_QUARANTINE],
                                      partition_by=["as_of_date"])
        failpoint(AFTER_QUARANTINE)
        n_loaded = catalog.write(steps.select(valid, SILVER_COLUMNS), SILVER_PATIENTS, mode="replace_partition",
                                 partition=partitions[SILVER_PATIENTS], partition_by=["as_of_date"])
        failpoint(AFTER_SILVER)
        if rows_read is not None and n_loaded + n_quarantined != rows_read:
            raise RuntimeError(f"{load.source}: read {rows_read} rows but loaded {n_loaded} + quarantined "
                               f"{n_quarantined}; the load is rolled back")
        steps.merge_dim(catalog, [(c, "=", v) for c, v in partitions[SILVER_PATIENTS].items()], load.as_of_date)
        current, versions = steps.dim_counts(catalog)
        failpoint(AFTER_DIM)
        load.record(catalog, COMMITTED, (n_loaded + n_quarantined, n_loaded, n_quarantined))
    except BaseException:
        _roll_back(catalog, load)           # then the failure itself propagates
        raise
    return LoadReport(source=load.source, as_of_date=load.as_of_date.isoformat(),
                      rows_in=n_loaded + n_quarantined, rows_loaded=n_loaded, rows_quarantined=n_quarantined,
                      current_members=current, dim_versions=versions)


def run_load(catalog, load: Load, replace: bool, frames: Callable[[], tuple],
             rows_read: int | None = None, steps: StoreSteps = SPARK_STEPS) -> LoadReport:
    """Heal, check the source, build (valid, rejected) with ``frames``, store them with ``steps``.

    The caller holds the catalog's exclusive right to write silver_patients."""
    heal(catalog)
    _check_source(catalog, load, replace)
    valid, rejected = frames()
    return _store(catalog, load, valid, rejected, rows_read, steps)


def generated_frames(spark: SparkSession, catalog, patients: int, seed: int, as_of: dt.date,
                     scenario: str) -> tuple[DataFrame, DataFrame]:
    """(valid, rejected) of one generated load (first load: the population), after the earlier ones."""
    existing, previous_as_of = None, None
    if catalog.exists(DIM_PATIENTS):
        dim = catalog.read(DIM_PATIENTS, [("source", "=", GENERATOR_SOURCE)])
        earlier = catalog.distinct_values(SILVER_PATIENTS, "as_of_date",
                                          [("source", "=", GENERATOR_SOURCE), ("as_of_date", "<", as_of)])
        existing, previous_as_of = state_before(dim, as_of), (earlier[-1] if earlier else None)
    load = generate_load(spark, seed, as_of, patients, get_scenario(scenario).shape, existing, previous_as_of)
    records = load.withColumn("raw_record", F.to_json(F.struct(*SOURCE_COLUMNS[:-1], "annual_charges")))
    validated = validate(records, ["patient_natural_key"], from_raw=False, stage="generate")
    return validated.valid, validated.rejected


def member_key(member_id: Column, keys: MemberKeys) -> Column:
    """A member's key from their id: a keyed hash (the id cannot be read back, nor recomputed without it)."""
    secret = _secret_text(keys)
    salted = F.concat(F.length(secret).cast("string"), F.lit(":"), secret, F.lit("|"), member_id)
    return F.concat(F.lit(MEMBER_KEY_PREFIX), F.substring(F.sha2(salted, 256), 1, KEY_HEX))


def _secret_text(keys: MemberKeys) -> Column:
    """The hash's key as Spark reads it: from the secret service where there is one, else the text given."""
    if keys.secret_reference is None:
        return F.lit(keys.secret)
    scope, key = keys.secret_reference
    return F.call_function("secret", F.lit(scope), F.lit(key))


def content_key(occurrence: Column) -> Column:
    """A row's key from its parsed values and its occurrence among identical rows.

    A value that did not parse is keyed by its raw text, so two different bad rows differ."""
    values = [F.coalesce(F.col(c).cast("string"), F.concat(F.lit("raw:"), F.col(f"raw_{raw}")), F.lit(""))
              for c, raw in zip(CONTENT_COLUMNS, SOURCE_COLUMNS)]
    return F.concat(F.lit(INGEST_KEY_PREFIX),
                    F.substring(F.sha2(F.concat_ws("|", *values, occurrence.cast("string")), 256), 1, KEY_HEX))


def _loaded_elsewhere(catalog, valid: DataFrame, as_of: dt.date, source: str,
                      column: str) -> tuple[DataFrame, DataFrame | None]:
    """(valid, rejected): a member another source already loaded for ``as_of`` is quarantined
    (one row per member and date in silver, whichever files it came in)."""
    if not catalog.exists(SILVER_PATIENTS):
        return valid, None
    others = (catalog.read(SILVER_PATIENTS, [("as_of_date", "=", as_of), ("source", "!=", source)],
                           ["patient_natural_key", "source"])
              .groupBy("patient_natural_key").agg(F.min("source").alias("_loaded_from")))
    flagged = valid.join(others, "patient_natural_key", "left")
    rejected = (flagged.where(F.col("_loaded_from").isNotNull())
                .select(F.lit("ingest").alias("stage"), "source", "source_row",
                        F.col("patient_natural_key").alias("record_key"), F.lit(column).alias("column_name"),
                        F.concat(F.lit(f"member already loaded for {as_of.isoformat()} from "),
                                 F.col("_loaded_from")).alias("reason"), "raw_record", "as_of_date"))
    return flagged.where(F.col("_loaded_from").isNull()).drop("_loaded_from"), rejected


def ingest_frames(spark: SparkSession, catalog, staged: StagedCsv, as_of: dt.date,
                  keys: MemberKeys) -> tuple[DataFrame, DataFrame]:
    """(valid, rejected) of a staged CSV: typed, validated, keyed; malformed rows quarantined whole."""
    rows = (spark.read.parquet(str(staged.staged))
            .withColumn("as_of_date", F.lit(as_of))
            .withColumn("source", F.lit(str(staged.path))))
    # The fields as read, in file order: what a quarantined row shows.
    fields = F.to_json(F.array(*[F.col(name) for name in staged.fields]))
    parsed = parse_source_columns(rows.where(F.col("malformed_reason").isNull()).withColumn("raw_record", fields))
    silver_types = SILVER_PATIENTS_SPEC.columns.types
    for column in SILVER_COLUMNS:
        if column not in parsed.columns:
            parsed = parsed.withColumn(column, F.lit(None).cast(silver_types[column]))
    if staged.member_ids:
        validated = validate(parsed.drop("patient_natural_key"), ["member_id"], from_raw=True, stage="ingest",
                             duplicate_column=keys.id_column, member_ids=True,
                             key=lambda _occurrence: member_key(F.col("member_id"), keys))
    else:   # an exact repeat of an earlier row is a problem of the whole row, like a malformed one
        validated = validate(parsed.drop("patient_natural_key"), list(CONTENT_COLUMNS), from_raw=True,
                             stage="ingest", duplicate_column="row", key=content_key)
    duplicate_column = keys.id_column if staged.member_ids else "row"
    valid, elsewhere = _loaded_elsewhere(catalog, validated.valid, as_of, str(staged.path), duplicate_column)
    malformed = (rows.where(F.col("malformed_reason").isNotNull())
                 .select(F.lit("ingest").alias("stage"), "source", "source_row",
                         F.concat(F.lit(INGEST_KEY_PREFIX),
                                  F.substring(F.sha2(F.col("malformed_record"), 256), 1, KEY_HEX)).alias("record_key"),
                         F.lit("row").alias("column_name"), F.col("malformed_reason").alias("reason"),
                         F.col("malformed_record").alias("raw_record"), "as_of_date"))
    rejected = validated.rejected.unionByName(malformed)
    return valid, rejected if elsewhere is None else rejected.unionByName(elsewhere)
