"""The CSV member load on the laptop: validation, keys, quarantine and SCD2 in DuckDB over Arrow, no Spark.

Issue 26: Spark's start-up alone (a JVM, then Spark Connect) costs minutes and gigabytes on a
laptop, whatever the file's size, so locally the staged CSV is judged by DuckDB and written to
the Delta tables through the same catalog, journal and rollback (``spark/patient_load.run_load``).
On Databricks the Spark path runs (``runtime/catalog.arrow_member_load``: decided once).

The checks are the Spark path's, built from the same contract (``data/contract.py``: ranges,
categories, smoker words) and the same patterns and order (``spark/validation.py``); the keys
are the same hashes (``spark/patient_load.py``: prefixes, hash length, content columns), so
one file loaded either way gives the same silver_patients, quarantine and dim_patients rows
(``tests/test_arrow_member_load.py`` compares them row for row).

Memory stays bounded whatever the file's size: DuckDB works within ``MEMORY_LIMIT`` and spills
beyond it, and its results (the valid and the rejected rows, the new dim_patients versions) go
to Parquet in the tables' layout beside the staged file or in the home's spool, which the
catalog commits to Delta as they are when the write only adds rows (``runtime/spooled_parquet.py``),
and otherwise streams; no table of the load is held in the process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from healthcare_mlops.data.contract import (AGE_RANGE, BMI_RANGE, CHARGES_RANGE, CHILDREN_RANGE,
                                            DIM_ATTRIBUTE_COLUMNS, REGIONS, SCD2_TRACKED, SEXES, SILVER_COLUMNS,
                                            SMOKER_VALUES, SOURCE_COLUMNS)
from healthcare_mlops.data.csv_source import STAGED_FIELDS, StagedCsv
from healthcare_mlops.runtime.catalog_base import sql_literal
from healthcare_mlops.runtime.delta_catalog import private_folder
from healthcare_mlops.runtime.duckdb_session import native_parquet_view, parquet_files
from healthcare_mlops.runtime.spooled_parquet import SpooledParquet
from healthcare_mlops.spark.patient_load import (CONTENT_COLUMNS, INGEST_KEY_PREFIX, KEY_HEX, MEMBER_KEY_PREFIX,
                                                 MemberKeys, StoreSteps)
from healthcare_mlops.spark.scd2 import PARTITION_BY as DIM_PARTITION_BY
from healthcare_mlops.spark.validation import INTEGER_PATTERN, NON_FINITE_PATTERN, NUMBER_PATTERN
from healthcare_mlops.tables import (DATA_QUALITY_QUARANTINE_SPEC, DIM_PATIENTS, DIM_PATIENTS_SPEC, SILVER_PATIENTS,
                                     SILVER_PATIENTS_SPEC)

KEY = "patient_natural_key"
STAGED_RAW = tuple(f"raw_{name}" for name in STAGED_FIELDS)   # the staged file's strings of a row
VALID = "({row}_failed IS NULL AND {row}_rank = 1)"       # a row of the view judged that loads
PARSED = ("age", "sex", "bmi", "children", "smoker", "region", "annual_charges", "member_id")  # _parsed_columns'
# DuckDB's memory for one load; beyond it, it spills to the load's spool folder (issue 26: the
# process tree within 2 GB whatever the file's size). The results go to Parquet, not to memory.
MEMORY_LIMIT = "1GB"
SALT = "member_key_salt"                # the connection's variable holding the id hash's key
# Spark's text of a double (Java's Double.toString): what its reasons and content keys show.
# The plain case comes first: it is nearly every value (NaN compares above every number in DuckDB).
JAVA_DOUBLE = """CREATE MACRO java_double(v) AS CASE
  WHEN abs(v) >= 1e-3 AND abs(v) < 1e7 THEN CAST(v AS VARCHAR)
  WHEN v IS NULL THEN NULL WHEN isnan(v) THEN 'NaN'
  WHEN isinf(v) THEN CASE WHEN v > 0 THEN 'Infinity' ELSE '-Infinity' END
  WHEN v = 0 THEN CAST(v AS VARCHAR)
  ELSE CAST(v / pow(10, floor(log10(abs(v)))) AS VARCHAR) || 'E'
       || CAST(CAST(floor(log10(abs(v))) AS BIGINT) AS VARCHAR)
END"""
# Spark's trim (spaces only). DuckDB's trim with a character set costs ten times a plain read of
# the value (benchmarks/README.md), and nearly every value has no space to trim: only those pay it.
SPARK_TRIM = "CREATE MACRO spark_trim(v) AS CASE WHEN prefix(v, ' ') OR suffix(v, ' ') THEN trim(v, ' ') ELSE v END"


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Kept as enums in the checked rows (1 byte a row, not 16): the contract's values; any other is null there.
CATEGORIES = {"sex": f"TRY_CAST(sex AS ENUM({', '.join(map(_text, SEXES))})) AS sex",
              "region": f"TRY_CAST(region AS ENUM({', '.join(map(_text, REGIONS))})) AS region"}


def _trimmed(raw: str) -> str:
    return f"spark_trim(raw_{raw})"


def _missing(raw: str) -> str:
    return f"(raw_{raw} IS NULL OR {_trimmed(raw)} = '')"


def _as_text(column: str, kind: str) -> str:
    return f"java_double({column})" if kind == "double" else f"CAST({column} AS VARCHAR)"


def _quote(raw: str) -> str:
    return f"('''' || coalesce(raw_{raw}, '') || '''')"


def _number_checks(column: str, raw: str, low, high, whole: bool, required: bool = True,
                   named_bounds: bool = False) -> list[tuple[str, str, str]]:
    """(column name, reason, is bad) of one number, in ``spark/validation._number_checks``' order."""
    kind = "a whole number" if whole else "a number"
    value = _as_text(column, "int" if whole else "double")
    checks = [("'missing value'", _missing(raw))] if required else []
    checks += [(f"'not a finite number: ' || {_quote(raw)}", f"regexp_matches(lower({_trimmed(raw)}), "
                                                             f"{_text(NON_FINITE_PATTERN)})"),
               (f"'not {kind}: ' || {_quote(raw)}", f"({column} IS NULL AND NOT {_missing(raw)})")]
    if named_bounds:
        checks += [(f"{_text(f'{raw} below the lower bound {low:,.0f} (data/contract.py), got ')} || {value}",
                    f"coalesce({column} < {low}, false)"),
                   (f"{_text(f'{raw} above the upper bound {high:,.0f} (data/contract.py), got ')} || {value}",
                    f"coalesce({column} > {high}, false)")]
    else:
        checks.append((f"{_text(f'{raw} outside {low}-{high}: ')} || {value}",
                       f"coalesce({column} < {low} OR {column} > {high}, false)"))
    return [(raw, reason, condition) for reason, condition in checks]


def _category_checks(column: str, allowed) -> list[tuple[str, str, str]]:
    if column == "smoker":
        not_allowed = f"(smoker IS NULL AND NOT {_missing(column)})"
    else:
        not_allowed = f"coalesce(NOT {column} IN ({', '.join(map(_text, allowed))}) AND NOT {_missing(column)}, false)"
    return [(column, "'missing value'", _missing(column)),
            (column, f"{_quote(column)} || {_text(' is not one of ' + ', '.join(allowed))}", not_allowed)]


def record_checks(member_ids: bool) -> list[tuple[str, str, str]]:
    """(column, reason, is bad) in the order they are applied, as ``spark/validation.record_checks``."""
    return [
        *([("member_id", "'missing value'", _missing("member_id"))] if member_ids else []),
        *_number_checks("age", "age", *AGE_RANGE, whole=True),
        *_category_checks("sex", SEXES),
        *_number_checks("bmi", "bmi", *BMI_RANGE, whole=False),
        *_number_checks("children", "children", *CHILDREN_RANGE, whole=True),
        *_category_checks("smoker", tuple(SMOKER_VALUES)),
        *_category_checks("region", REGIONS),
        *_number_checks("annual_charges", "charges", *CHARGES_RANGE, whole=False, required=False,
                        named_bounds=True),
    ]


def _category(raw: str) -> str:
    """A category's value as parsed (sex, region) from its raw string ``raw``."""
    return f"lower(spark_trim({raw}))"


def _parsed_columns() -> str:
    """Typed columns from the raw strings, as ``spark/validation.parse_source_columns``."""
    def number(raw: str, pattern: str, sql_type: str) -> str:
        value = _trimmed(raw)
        return f"CASE WHEN regexp_matches({value}, {_text(pattern)}) THEN TRY_CAST({value} AS {sql_type}) END"

    smoker = " ".join(f"WHEN {_text(word)} THEN {str(flag).lower()}" for word, flag in SMOKER_VALUES.items())
    kind = dict(SILVER_PATIENTS_SPEC.columns.pairs)           # the silver table's types, one place
    return ", ".join([f"{number('age', INTEGER_PATTERN, kind['age'])} AS age", f"{_category('raw_sex')} AS sex",
                      f"{number('bmi', NUMBER_PATTERN, kind['bmi'])} AS bmi",
                      f"{number('children', INTEGER_PATTERN, kind['children'])} AS children",
                      f"CASE lower({_trimmed('smoker')}) {smoker} END AS smoker",
                      f"{_category('raw_region')} AS region",
                      f"{number('charges', NUMBER_PATTERN, kind['annual_charges'])} AS annual_charges",
                      f"{_trimmed('member_id')} AS member_id"])


def _passes(member_ids: bool) -> str:
    """True for a row that no check of ``record_checks`` fails, from the parsed values alone: a
    parsed number is never missing or non-finite (the patterns take digits only) and a category
    in its list is not missing. Most rows pass, and this spares them the checks' patterns."""
    def within(column: str, bounds) -> str:
        return f"{column} BETWEEN {bounds[0]} AND {bounds[1]}"

    return " AND ".join([*(["member_id <> ''"] if member_ids else []), within("age", AGE_RANGE),
                         f"sex IN ({', '.join(map(_text, SEXES))})", within("bmi", BMI_RANGE),
                         within("children", CHILDREN_RANGE), "smoker IS NOT NULL",
                         f"region IN ({', '.join(map(_text, REGIONS))})", within("annual_charges", CHARGES_RANGE)])


def _first_failure(checks: list[tuple[str, str, str]], passes: str) -> tuple[str, str, str]:
    """(index, column, reason) of the first failing check: each condition is evaluated once and only
    for rows that do not plainly pass (``passes``), the column and reason only for the rows that fail."""
    index = f"WHEN {passes} THEN NULL " + " ".join(
        f"WHEN {condition} THEN {number}" for number, (_, _, condition) in enumerate(checks))
    columns = " ".join(f"WHEN {number} THEN {_text(column)}" for number, (column, _, _) in enumerate(checks))
    reasons = " ".join(f"WHEN {number} THEN {reason}" for number, (_, reason, _) in enumerate(checks))
    return f"CASE {index} END", f"CASE _failed {columns} END", f"CASE _failed {reasons} END"


def _key(member_ids: bool, raw=lambda name: f"raw_{name}") -> str:
    """The member key (``spark/patient_load.member_key`` / ``content_key``) of a row by ``_rank``;
    ``raw`` gives the expression of a raw string (read only where a value did not parse). The id hash's
    key is the connection's variable ``SALT`` (``_salted``), never a literal of the SQL text."""
    if member_ids:
        return f"'{MEMBER_KEY_PREFIX}' || substr(sha256(getvariable('{SALT}') || member_id), 1, {KEY_HEX})"
    kinds = {"age": "int", "children": "int", "bmi": "double", "annual_charges": "double", "smoker": "boolean"}
    values = [f"coalesce({_as_text(c, kinds.get(c, 'string'))}, 'raw:' || {raw(name)}, '')"
              for c, name in zip(CONTENT_COLUMNS, SOURCE_COLUMNS)]
    return (f"'{INGEST_KEY_PREFIX}' || substr(sha256(concat_ws('|', {', '.join(values)}, "
            f"CAST(_rank AS VARCHAR))), 1, {KEY_HEX})")


def _salted(connection, secret: str) -> None:
    """The id hash's key (its length, the secret, a separator: ``spark/patient_load.member_key``) as the
    connection's variable, bound as a parameter: DuckDB quotes a statement's text in its errors."""
    connection.execute(f"SET VARIABLE {SALT} = ?", [f"{len(secret)}:{secret}|"])


def _connection(spill: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(config={"python_enable_replacements": False})
    connection.execute("SET enable_progress_bar = false")     # it would print into the command's output
    connection.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    connection.execute(f"SET temp_directory = {_text(str(spill))}")
    connection.execute("SET preserve_insertion_order = false")
    connection.execute(JAVA_DOUBLE)
    connection.execute(SPARK_TRIM)
    return connection


@contextlib.contextmanager
def _spool(catalog):
    """A private folder under the home's spool for one step's Parquet results, removed after."""
    folder = private_folder(catalog.settings.home.resolve() / "spool") / uuid.uuid4().hex
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _to_parquet(connection, query: str, folder: Path, spec, partition: dict | None = None) -> SpooledParquet:
    """``query``'s rows written by DuckDB under ``folder``; with ``partition`` (the one value every
    row has in the table's partition column) in the table's layout, ``<column>=<value>/``, the column
    left out of the file, which the Delta commit then adds to the table as it is when it can."""
    # One known value, so a plain COPY into its folder: DuckDB's PARTITION_BY buffers far more.
    (column, value), = (partition or {None: None}).items()
    target = folder / f"{column}={value.isoformat()}" if partition else folder
    target.mkdir(parents=True)
    select = f"SELECT * EXCLUDE ({column}) FROM ({query})" if partition else query  # nosec B608 # names from tables.py
    connection.execute(f"COPY ({select}) TO {_text(str(target / 'data.parquet'))} (FORMAT parquet)")
    return SpooledParquet(folder, spec.arrow_schema(), tuple(partition or ()))


def _repeated_hashes(connection, hashed: str) -> None:
    """The temp table ``repeated_hashes``: the values of ``hashed`` that more than one row of ``checked`` has.

    Found by sorting the hashes in numpy (80 MB for 10M rows, outside DuckDB's limit) and keeping a
    value equal to the one before it: DuckDB's hash aggregate of a 10M-row file's 10M distinct
    hashes took about 1.2 CPU s more (benchmarks/README.md)."""
    hashes = connection.execute(f"SELECT {hashed} AS _hash FROM checked").fetchnumpy()["_hash"]  # nosec B608 # names from tables.py
    hashes.sort()
    connection.register("sorted_repeats", pa.table({"_hash": np.unique(hashes[1:][hashes[1:] == hashes[:-1]])}))
    connection.execute("CREATE TEMP TABLE repeated_hashes AS SELECT _hash FROM sorted_repeats")
    connection.unregister("sorted_repeats")


def _judged(connection, staged: StagedCsv, as_of: dt.date, keys: MemberKeys) -> None:
    """The view ``judged``: every well-formed row parsed, keyed and with its first failure.

    The duplicate rule ranks a row among the identical rows before it (valid rows among valid
    ones). A window over every row sorted all 10M of them and was nearly half the load's CPU
    (benchmarks/README.md); here the few hashes seen more than once are found (``_repeated_hashes``),
    and only those rows are ranked by the exact values (a hash collision only ranks a few more).

    The rows are read twice (the repeated hashes, then the rows), so they are parsed and checked
    once into a temp table; it keeps the raw strings only where a reason or a key may read them
    (a failed row, a row without charges) and sex and region as enums, so a 10M-row file's rows take
    about half of DuckDB's memory limit instead of spilling past it (``_rejected`` reads a valid
    row's strings back from the staged file)."""
    if staged.member_ids:
        _salted(connection, keys.secret)
    checks = record_checks(staged.member_ids)
    failed, failed_column, failed_reason = _first_failure(checks, _passes(staged.member_ids))
    duplicate_key = ", ".join(["member_id"] if staged.member_ids else list(CONTENT_COLUMNS))
    duplicate_column = keys.id_column if staged.member_ids else "row"
    parsed = [CATEGORIES.get(c, c) for c in PARSED if staged.member_ids or c != "member_id"]
    # one list, not a column each: a null string still takes 16 bytes a row in DuckDB's memory
    raws = (f"CASE WHEN _failed IS NOT NULL OR annual_charges IS NULL THEN [{', '.join(STAGED_RAW)}] END "
            "AS _raws")
    connection.execute(f"""CREATE TEMP TABLE checked AS
      WITH parsed AS (SELECT source_row, {', '.join(STAGED_RAW)}, {_parsed_columns()}
                      FROM read_parquet({_text(str(staged.staged))}) WHERE malformed_reason IS NULL),
      failing AS (SELECT *, {failed} AS _failed FROM parsed)
      SELECT source_row, {', '.join(parsed)}, {raws}, CAST(_failed AS TINYINT) AS _failed FROM failing""")  # nosec B608 # names from tables.py, values quoted
    position = {raw: index for index, raw in enumerate(STAGED_RAW, 1)}
    # sex and region as parsed: the enum's text, else (a value outside the list) the raw string's
    texts = {name: f"coalesce(CAST({name} AS VARCHAR), {_category('_raws[%d]' % position['raw_' + name])})"
             for name in CATEGORIES}
    hashed = f"hash(_failed IS NULL, {duplicate_key})"      # what the duplicate rule compares
    _repeated_hashes(connection, hashed)
    connection.execute(f"""CREATE TEMP TABLE ranks AS
      WITH repeated AS (SELECT * REPLACE ({', '.join(f'{text} AS {name}' for name, text in texts.items())})
                        FROM checked WHERE {hashed} IN (SELECT _hash FROM repeated_hashes))
      SELECT source_row, row_number() OVER w AS _rank, min(source_row) OVER w AS _first FROM repeated
      WINDOW w AS (PARTITION BY _failed IS NULL, {duplicate_key} ORDER BY source_row)""")  # nosec B608 # names from tables.py
    raw_columns = ", ".join(f"_raws[{index}] AS {raw}" for raw, index in position.items())
    if not staged.member_ids:
        raw_columns += ", CAST(NULL AS VARCHAR) AS member_id"
    # A valid row is ``_failed IS NULL AND _rank = 1``: the results' filters say so rather than
    # going through _column's CASE, and its key reads a raw string only where a value is null.
    connection.execute(f"""CREATE VIEW judged AS
      WITH ranked AS (SELECT c.* REPLACE ({', '.join(f'{text} AS {name}' for name, text in texts.items())}),
                             coalesce(r._rank, 1) AS _rank,
                             coalesce(r._first, c.source_row) AS _first
                      FROM checked c LEFT JOIN ranks r ON c.source_row = r.source_row)
      SELECT *, {raw_columns},
             {_key(staged.member_ids, lambda name: f"_raws[{position[f'raw_{name}']}]")} AS {KEY},
             CASE WHEN _failed IS NULL AND _rank > 1 THEN {_text(duplicate_column)} ELSE {failed_column} END AS _column,
             CASE WHEN _failed IS NULL AND _rank > 1 THEN 'duplicate of source row ' || CAST(_first AS VARCHAR)
                  ELSE {failed_reason} END AS _reason,
             DATE '{as_of.isoformat()}' AS as_of_date, {_text(str(staged.path))} AS source
      FROM ranked""")  # nosec B608 # names from tables.py, values quoted


def _rejected(connection, staged: StagedCsv, as_of: dt.date, duplicate_column: str, elsewhere: bool) -> str:
    """The quarantine rows' query: the failed and duplicate rows of ``judged``, its valid rows whose
    member another file loaded (``elsewhere``: the temp table ``loaded``), and the malformed lines.

    ``checked`` keeps a failed row's strings; a valid row quarantined all the same (a duplicate, a
    member loaded from another file: few) has its strings read back from the staged file."""
    staged_file = _text(str(staged.staged))
    quarantined_valid = "SELECT source_row FROM ranks WHERE _rank > 1"
    if elsewhere:
        quarantined_valid += f" UNION ALL SELECT source_row FROM judged WHERE {KEY} IN (SELECT {KEY} FROM loaded)"  # nosec B608 # names
    connection.execute(f"""CREATE TEMP TABLE valid_raw AS
      SELECT source_row, {', '.join(STAGED_RAW)} FROM read_parquet({staged_file})
      WHERE source_row IN ({quarantined_valid})""")  # nosec B608 # names from tables.py, values quoted
    raw_record = "to_json([" + ", ".join(f"coalesce(v.{name}, j.{name})" for name in staged.fields) + "])"
    rows = "FROM judged j LEFT JOIN valid_raw v ON v.source_row = j.source_row"
    loaded_elsewhere = f"""UNION ALL
      SELECT 'ingest', j.source, j.source_row, j.{KEY}, {_text(duplicate_column)},
             'member already loaded for {as_of.isoformat()} from ' || l._loaded_from, {raw_record}, j.as_of_date
      {rows} JOIN loaded l ON l.{KEY} = j.{KEY} WHERE {VALID.format(row="j.")}""" if elsewhere else ""  # nosec B608 # names from tables.py, values quoted
    return f"""
      SELECT 'ingest' AS stage, j.source, j.source_row, j.{KEY} AS record_key, j._column AS column_name,
             j._reason AS reason, {raw_record} AS raw_record, j.as_of_date {rows} WHERE NOT {VALID.format(row="j.")}
      {loaded_elsewhere}
      UNION ALL
      SELECT 'ingest', {_text(str(staged.path))}, source_row,
             '{INGEST_KEY_PREFIX}' || substr(sha256(malformed_record), 1, {KEY_HEX}), 'row', malformed_reason,
             malformed_record, DATE '{as_of.isoformat()}'
      FROM read_parquet({staged_file}) WHERE malformed_reason IS NOT NULL"""  # nosec B608 # names from tables.py, values quoted


def ingest_tables(catalog, staged: StagedCsv, as_of: dt.date, keys: MemberKeys
                  ) -> tuple[SpooledParquet, SpooledParquet]:
    """(valid, rejected) of a staged CSV as Parquet in the tables' layout beside the staged file
    (removed with it, unless the commit moved the files into the table): what ``ingest_frames`` gives in Spark."""
    stem = staged.staged.parent / staged.staged.stem
    connection = _connection(Path(f"{stem}-spill"))
    _judged(connection, staged, as_of, keys)
    others = None
    if catalog.exists(SILVER_PATIENTS):
        others = catalog.read_arrow(SILVER_PATIENTS, [("as_of_date", "=", as_of), ("source", "!=", str(staged.path))],
                                    [KEY, "source"])
    duplicate_column = keys.id_column if staged.member_ids else "row"
    # Members another file loaded for this date: only when there are any is every row's key joined.
    elsewhere = others is not None and others.num_rows > 0
    if elsewhere:
        connection.register("others", others)
        connection.execute(f"CREATE TEMP TABLE loaded AS SELECT {KEY}, min(source) AS _loaded_from FROM others "
                           f"GROUP BY {KEY}")  # nosec B608 # names from tables.py
    not_loaded = f"AND {KEY} NOT IN (SELECT {KEY} FROM loaded)" if elsewhere else ""  # nosec B608 # names
    present = {KEY, "member_id", "sex", "age", "bmi", "children", "smoker", "region", "annual_charges",
               "as_of_date", "source", "source_row"}              # what judged has of silver's columns
    silver = ", ".join(c if c in present else f"CAST(NULL AS {SILVER_PATIENTS_SPEC.columns.types[c]}) AS {c}"
                       for c in SILVER_COLUMNS)
    valid = _to_parquet(connection, f"SELECT {silver} FROM judged WHERE {VALID.format(row='')} {not_loaded}",  # nosec B608 # names from tables.py, values quoted
                        Path(f"{stem}-valid"), SILVER_PATIENTS_SPEC, {"as_of_date": as_of})
    rejected = _to_parquet(connection, _rejected(connection, staged, as_of, duplicate_column, elsewhere),
                           Path(f"{stem}-rejected"), DATA_QUALITY_QUARANTINE_SPEC, {"as_of_date": as_of})
    connection.close()
    return valid, rejected


def _distinct(left: str, right: str) -> str:
    return " OR ".join(f"{left}.{c} IS DISTINCT FROM {right}.{c}" for c in SCD2_TRACKED)


def _build_dim() -> str:
    """The query folding the view ``silver`` into SCD2 versions, as ``spark/scd2.build_dim_patients``."""
    tracked = ", ".join(SCD2_TRACKED)
    return f"""WITH ordered AS (
        SELECT *, lag(struct_pack({tracked})) OVER w AS _prev, struct_pack({tracked}) AS _now FROM silver
        WINDOW w AS (PARTITION BY {KEY} ORDER BY as_of_date, source)),
      changes AS (SELECT * FROM ordered WHERE _prev IS NULL OR _prev IS DISTINCT FROM _now)
      SELECT {', '.join(DIM_ATTRIBUTE_COLUMNS)}, as_of_date AS effective_from,
             lead(as_of_date) OVER v AS effective_to, lead(as_of_date) OVER v IS NULL AS is_current_record,
             CAST(row_number() OVER v AS INTEGER) AS scd_version
      FROM changes WINDOW v AS (PARTITION BY {KEY} ORDER BY as_of_date, source)"""  # nosec B608 # names from tables.py, values quoted


def _silver_view(connection, table) -> None:
    """The view ``silver`` over the table, read by DuckDB's own Parquet reader when it reads the same
    columns (``duckdb_session.native_parquet_view``): through pyarrow's scanner, which reads ahead,
    the 10M-row merge held 0.6 GB more."""
    connection.register("silver_dataset", table.to_pyarrow_dataset())
    connection.execute("CREATE VIEW silver AS SELECT * FROM silver_dataset")
    files = parquet_files(table)
    if files and native_parquet_view(connection, files, list(table.metadata().partition_columns), "silver"):
        connection.unregister("silver_dataset")


def merge_dim_patients(catalog, where: list[tuple], as_of: dt.date) -> None:
    """Merge one load (silver's rows ``where``) into dim_patients, as ``spark/scd2.merge_dim_patients``."""
    with _spool(catalog) as spool:
        connection = _connection(spool / "spill")
        _silver_view(connection, catalog.delta_table(SILVER_PATIENTS))
        load_rows = "SELECT * FROM silver WHERE " + " AND ".join(f"{c} = {sql_literal(v)}" for c, _, v in where)  # nosec B608 # names from tables.py, values quoted
        current = f"SELECT NULL::VARCHAR AS {KEY}, NULL::INTEGER AS scd_version, " + ", ".join(
            f"NULL AS {c}" for c in SCD2_TRACKED) + " WHERE false"
        if catalog.exists(DIM_PATIENTS):
            starts = catalog.read_arrow(DIM_PATIENTS, columns=["effective_from"]).column(0)
            latest = pc.max(starts).as_py() if len(starts) else None
            if latest is not None and latest >= as_of:
                rebuilt = _to_parquet(connection, _build_dim(), spool / "dim", DIM_PATIENTS_SPEC)
                catalog.write(rebuilt, DIM_PATIENTS, mode="overwrite", partition_by=DIM_PARTITION_BY)
                return
            connection.register("dim", catalog.read_arrow(DIM_PATIENTS, [("is_current_record", "=", True)],
                                                          [KEY, "scd_version", *SCD2_TRACKED]))
            current = "SELECT * FROM dim"
        attributes = ", ".join(f"l.{c}" for c in DIM_ATTRIBUTE_COLUMNS)
        query = f"""SELECT {attributes}, DATE '{as_of.isoformat()}' AS effective_from,
            CAST(NULL AS DATE) AS effective_to, true AS is_current_record,
            CAST(coalesce(c.scd_version, 0) + 1 AS INTEGER) AS scd_version
          FROM ({load_rows}) l LEFT JOIN ({current}) c ON l.{KEY} = c.{KEY}
          WHERE c.{KEY} IS NULL OR {_distinct('l', 'c')}"""  # nosec B608 # names from tables.py, values quoted
        arriving = _to_parquet(connection, query, spool / "arriving", DIM_PATIENTS_SPEC, {DIM_PARTITION_BY[0]: as_of})
        # a member with a current version before this load: that version closes
        files = [_text(str(f)) for f in arriving.files()]
        query = f"SELECT {KEY} FROM read_parquet([{', '.join(files)}]) WHERE scd_version > 1"  # nosec B608 # names from tables.py, paths quoted
        changed = connection.execute(query).fetchall() if files else []
        connection.close()
        catalog.write(arriving, DIM_PATIENTS, mode="append", partition_by=DIM_PARTITION_BY)
    if changed:
        catalog.update(DIM_PATIENTS, {"effective_to": as_of, "is_current_record": False},
                       [(KEY, "in", [row[0] for row in changed]), ("is_current_record", "=", True),
                        ("effective_from", "<", as_of)])


def dim_counts(catalog) -> tuple[int, int]:
    """(current members, versions) of dim_patients as written."""
    current = catalog.read_arrow(DIM_PATIENTS, columns=["is_current_record"]).column(0)
    return int(pc.sum(current.cast(pa.int64())).as_py() or 0), len(current)


# The spooled results already have the tables' columns in order (``_to_parquet``).
ARROW_STEPS = StoreSteps(select=lambda rows, names: rows, merge_dim=merge_dim_patients,
                         dim_counts=dim_counts)
