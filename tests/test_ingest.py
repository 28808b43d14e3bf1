"""``data ingest``: the public insurance-charges CSV into silver_patients and dim_patients.

Row-level problems go to data_quality_quarantine with the file, the line number, the
column and the reason, and rows in = rows loaded + rows quarantined. A file that cannot
be read as this format at all fails with a message naming the problem and writes nothing.
Everything runs through ``ingest_csv`` (Spark, validation, Delta) in a temporary home.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from healthcare_mlops.composition import cli_runtime
from healthcare_mlops.data.contract import SILVER_COLUMNS
from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, DIM_PATIENTS, SILVER_PATIENTS

AS_OF = dt.date(2025, 3, 1)
HEADER = "age,sex,bmi,children,smoker,region,charges"
# Two file names whose first 24 letters and digits agree: their members must not share keys.
# A file's source is its resolved path; these tests pick a file's rows by its name.
GOOD_FILE = "insurance_charges_extract_2025_03_good.csv"
BAD_FILE = "insurance_charges_extract_2025_03_bad_rows.csv"
EMPTY_FILE = "header_only.csv"
CHARGES_BELOW = r"charges below the lower bound 1 \(data/contract.py\), "
IDENTIFIERS = ("member_id", "first_name", "last_name", "ssn", "date_of_birth", "zip_code", "enrollment_date")

# The mapping file: UTF-8 BOM, CRLF, spaces around values, upper/mixed case, quoted fields,
# an empty charges value (a member without a label yet), a blank line and the range limits.
GOOD_LINES = [
    HEADER,
    "19,female,27.9,0,yes,southwest,16884.924",               # line 2
    " 18 , MALE ,33.77,1,NO, SOUTHEAST ,1725.5523",           # line 3
    "28,Male,33,3,No,Southeast,4449.462",                     # line 4
    '"33","female","22.705","0","no","northwest","21984.47061"',  # line 5
    "32,male,28.88,0,no,northwest,",                          # line 6: no charges yet
    "",                                                       # line 7: blank, not a record
    "100,female,80,10,Yes,NorthEast,1",                       # line 8: upper range limits
    "18,male,10,0,no,northwest,1e4",                          # line 9: lower limits, exponent
]
GOOD_EXPECTED = {  # line: (age, sex, bmi, children, smoker, region, annual_charges)
    2: (19, "female", 27.9, 0, True, "southwest", 16884.924),
    3: (18, "male", 33.77, 1, False, "southeast", 1725.5523),
    4: (28, "male", 33.0, 3, False, "southeast", 4449.462),
    5: (33, "female", 22.705, 0, False, "northwest", 21984.47061),
    6: (32, "male", 28.88, 0, False, "northwest", None),
    8: (100, "female", 80.0, 10, True, "northeast", 1.0),
    9: (18, "male", 10.0, 0, False, "northwest", 10000.0),
}


@dataclass(frozen=True)
class BadRow:
    kind: str
    line: str
    column: str
    reason: str           # a regular expression the whole reason must match


OK = "20,female,27.9,0,yes,southwest,16884.924"   # repeated below: the duplicate cases
BAD_ROWS = [
    BadRow("age not numeric", "abc,male,33,3,no,southeast,4449.46", "age", r"not a whole number: 'abc'"),
    BadRow("age not whole", "30.5,male,33,3,no,southeast,4449.46", "age", r"not a whole number: '30.5'"),
    BadRow("age too low", "17,male,22.7,0,no,northwest,2198.4", "age", r"age outside 18-100: 17"),
    BadRow("age too high", "101,male,22.7,0,no,northwest,2198.4", "age", r"age outside 18-100: 101"),
    BadRow("age missing", ",male,22.7,0,no,northwest,2198.4", "age", r"missing value"),
    BadRow("bmi too low", "32,male,9.9,0,no,northwest,3866.85", "bmi", r"bmi outside 10.0-80.0: 9.9"),
    BadRow("bmi too high", "32,male,80.5,0,no,northwest,3866.85", "bmi", r"bmi outside 10.0-80.0: 80.5"),
    BadRow("bmi nan", "32,male,nan,0,no,northwest,3866.85", "bmi", r"not a finite number: 'nan'"),
    BadRow("bmi -inf", "32,male,-Inf,0,no,northwest,3866.85", "bmi", r"not a finite number: '-Inf'"),
    BadRow("bmi not numeric", "32,male,heavy,0,no,northwest,3866.85", "bmi", r"not a number: 'heavy'"),
    BadRow("bmi missing", "32,male,  ,0,no,northwest,3866.85", "bmi", r"missing value"),
    BadRow("children negative", "32,male,28.9,-1,no,northwest,3866.85", "children", r"children outside 0-10: -1"),
    BadRow("children above 10", "32,male,28.9,11,no,northwest,3866.85", "children", r"children outside 0-10: 11"),
    BadRow("children not whole", "32,male,28.9,1.5,no,northwest,3866.85", "children", r"not a whole number: '1.5'"),
    BadRow("children missing", "32,male,28.9,,no,northwest,3866.85", "children", r"missing value"),
    BadRow("sex invalid", "32,other,28.9,1,no,northwest,3866.85", "sex", r"'other' is not one of female, male"),
    BadRow("sex missing", "32,,28.9,1,no,northwest,3866.85", "sex", r"missing value"),
    BadRow("smoker invalid", "32,male,28.9,1,maybe,northwest,3866.85", "smoker", r"'maybe' is not one of yes, no"),
    BadRow("smoker missing", "32,male,28.9,1,,northwest,3866.85", "smoker", r"missing value"),
    BadRow("region invalid", "32,male,28.9,1,no,north,3866.85", "region",
           r"'north' is not one of northeast, northwest, southeast, southwest"),
    BadRow("region missing", "32,male,28.9,1,no, ,3866.85", "region", r"missing value"),
    BadRow("charges zero", "32,male,28.9,1,no,northwest,0", "charges", rf"{CHARGES_BELOW}got 0\.0"),
    BadRow("charges negative", "32,male,28.9,1,no,northwest,-12.5", "charges", rf"{CHARGES_BELOW}got -12\.5"),
    BadRow("charges not numeric", "32,male,28.9,1,no,northwest,n/a", "charges", r"not a number: 'n/a'"),
    BadRow("charges infinite", "32,male,28.9,1,no,northwest,inf", "charges", r"not a finite number: 'inf'"),
    BadRow("too few fields", "32,male,28.9,1,no,northwest", "row", r"row has 6 fields, expected 7"),
    BadRow("too many fields", "32,male,28.9,1,no,northwest,3866.85,x", "row", r"row has 8 fields, expected 7"),
    BadRow("exact duplicate", OK, "row", r"duplicate of source row 2"),
    BadRow("duplicate after normalising", " 20 , FEMALE ,27.90,0,YES,southwest,16884.9240", "row",
           r"duplicate of source row 2"),
    BadRow("first failing column wins", "17,other,9,1,maybe,north,0", "age", r"age outside 18-100: 17"),
]
BAD_FIRST_LINE = 3        # line 1 is the header, line 2 the valid row OK
BAD_LINES = [HEADER, OK] + [row.line for row in BAD_ROWS] + ["29,male,33,3,no,southeast,4449.462"]


def write_csv(path, lines, bom=True, newline="\r\n"):
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + newline.join(lines).encode("utf-8") + newline.encode())
    return path


def frame(settings, name) -> pd.DataFrame:
    return DeltaCatalog(settings).read_arrow(name).to_pandas()


def of_file(rows: pd.DataFrame, file_name: str) -> pd.Series:
    """Which ``rows`` came from the file named ``file_name`` (their source is its full path)."""
    return rows["source"].map(lambda source: Path(source).name) == file_name


# A member of a file without ids: ING- and 20 hex digits of a hash of the row's values.
CONTENT_KEY = r"ING-[0-9a-f]{20}"


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    """One home: the mapping file, the bad-rows file, a header-only file, then the mapping file again."""
    from healthcare_mlops.tasks.load_members import ingest_csv

    root = tmp_path_factory.mktemp("ingest")
    settings = resolve_settings("local", root / "home")
    files = {"good": write_csv(root / GOOD_FILE, GOOD_LINES),
             "bad": write_csv(root / BAD_FILE, BAD_LINES, bom=False, newline="\n"),
             "empty": write_csv(root / EMPTY_FILE, [HEADER])}
    reports = {name: ingest_csv(cli_runtime(settings), path, AS_OF) for name, path in files.items()}
    before_rerun = {name: frame(settings, name) for name in (SILVER_PATIENTS, DIM_PATIENTS, DATA_QUALITY_QUARANTINE)}
    reports["good_again"] = ingest_csv(cli_runtime(settings), files["good"], AS_OF)
    return settings, reports, before_rerun


@pytest.fixture(scope="module")
def silver(ingested) -> pd.DataFrame:
    return frame(ingested[0], SILVER_PATIENTS)


@pytest.fixture(scope="module")
def quarantine(ingested) -> pd.DataFrame:
    return frame(ingested[0], DATA_QUALITY_QUARANTINE)


# --- mapping -----------------------------------------------------------------------------------

def test_good_file_loads_every_row(ingested):
    report = ingested[1]["good"]
    assert (Path(report.source).name, report.as_of_date) == (GOOD_FILE, AS_OF.isoformat())
    assert Path(report.source).is_absolute()
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (len(GOOD_EXPECTED), len(GOOD_EXPECTED), 0)


def test_values_are_mapped(silver):
    rows = silver[of_file(silver, GOOD_FILE)].set_index("source_row").sort_index()
    assert list(rows.index) == sorted(GOOD_EXPECTED)        # source_row is the file's line number
    columns = ["age", "sex", "bmi", "children", "smoker", "region", "annual_charges"]
    got = {line: tuple(None if pd.isna(v) else v for v in values)
           for line, values in zip(rows.index, rows[columns].itertuples(index=False))}
    assert got == GOOD_EXPECTED
    assert list(silver.columns) == list(SILVER_COLUMNS)
    assert (rows["as_of_date"] == AS_OF).all()


def test_members_get_generated_keys_and_no_invented_identifiers(silver):
    rows = silver[of_file(silver, GOOD_FILE)]
    keys = rows["patient_natural_key"]
    assert all(re.fullmatch(CONTENT_KEY, key) for key in keys) and keys.is_unique
    assert rows[list(IDENTIFIERS)].isna().all().all()


def test_files_do_not_share_member_keys(silver, ingested):
    dim = frame(ingested[0], DIM_PATIENTS)
    assert not silver.duplicated(["patient_natural_key", "as_of_date"]).any()
    assert dim.groupby("patient_natural_key")["source"].nunique().max() == 1
    assert (dim.groupby("patient_natural_key")["is_current_record"].sum() == 1).all()
    loaded = len(GOOD_EXPECTED) + 2            # the bad file's two valid rows
    assert len(dim) == loaded and (dim["scd_version"] == 1).all()
    assert dim[list(IDENTIFIERS[:-1])].isna().all().all()


def test_rerunning_an_ingest_changes_nothing(ingested):
    settings, reports, before = ingested
    first, again = reports["good"], reports["good_again"]
    assert (again.rows_in, again.rows_loaded, again.rows_quarantined) == \
        (first.rows_in, first.rows_loaded, first.rows_quarantined)
    assert again.current_members == again.dim_versions == len(GOOD_EXPECTED) + 2
    for name, earlier in before.items():
        key = [c for c in ("source", "source_row", "patient_natural_key") if c in earlier.columns]
        pd.testing.assert_frame_equal(frame(settings, name).sort_values(key).reset_index(drop=True),
                                      earlier.sort_values(key).reset_index(drop=True))


def test_header_only_file_loads_nothing(ingested, silver, quarantine):
    report = ingested[1]["empty"]
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (0, 0, 0)
    assert of_file(silver, EMPTY_FILE).sum() == 0 and of_file(quarantine, EMPTY_FILE).sum() == 0


# --- bad rows ----------------------------------------------------------------------------------------

def test_rows_in_equals_loaded_plus_quarantined(ingested, silver, quarantine):
    report = ingested[1]["bad"]
    data_rows = len(BAD_LINES) - 1
    assert report.rows_in == data_rows == report.rows_loaded + report.rows_quarantined
    assert report.rows_quarantined == len(BAD_ROWS) == of_file(quarantine, BAD_FILE).sum()
    assert report.rows_loaded == 2 == of_file(silver, BAD_FILE).sum()
    assert sorted(silver.loc[of_file(silver, BAD_FILE), "source_row"]) == [2, len(BAD_LINES)]


def test_at_least_twelve_kinds_of_bad_rows():
    assert len({row.kind for row in BAD_ROWS}) == len(BAD_ROWS) >= 12
    assert len({row.column for row in BAD_ROWS}) == 8    # every source column, plus the whole row


@pytest.mark.parametrize("position, bad", list(enumerate(BAD_ROWS)), ids=[row.kind for row in BAD_ROWS])
def test_bad_row_is_quarantined_with_its_line_column_and_reason(quarantine, position, bad):
    line = BAD_FIRST_LINE + position
    rows = quarantine[of_file(quarantine, BAD_FILE) & (quarantine["source_row"] == line)]
    assert len(rows) == 1, f"line {line} ({bad.kind}) quarantined {len(rows)} times"
    row = rows.iloc[0]
    assert (row["stage"], row["column_name"], row["as_of_date"]) == ("ingest", bad.column, AS_OF)
    assert re.fullmatch(bad.reason, row["reason"]), row["reason"]
    assert re.fullmatch(CONTENT_KEY, row["record_key"])
    assert json.loads(row["raw_record"]) == next(csv.reader([bad.line]))   # the fields as read


# --- files that are not this format ----------------------------------------------------------------

FILE_FAILURES = [
    ("missing column", HEADER.replace(",charges", "").encode() + b"\n19,female,27.9,0,yes,southwest\n",
     r"missing columns: charges"),
    ("two missing columns", b"age,sex,children,smoker,region\n19,female,0,yes,southwest\n",
     r"missing columns: bmi, charges"),
    ("misspelled column", HEADER.replace("smoker", "smokr").encode() + b"\n19,female,27.9,0,yes,southwest,1\n",
     r"unknown column 'smokr' \(did you mean 'smoker'\?\)"),
    ("misspelled column, other case", b"Age,Sex,BMI,Children,Smoker,Regoin,Charges\n",
     r"unknown column 'regoin' \(did you mean 'region'\?\)"),
    ("extra column", b"id," + HEADER.encode() + b"\n1,19,female,27.9,0,yes,southwest,1\n", r"unknown column 'id'"),
    ("duplicate column", HEADER.encode() + b",age\n", r"duplicate columns in the header: age"),
    ("empty file", b"", r"the file is empty"),
    ("only blank lines and a BOM", b"\xef\xbb\xbf\r\n  \r\n", r"the file is empty"),
    ("no header", b"19,female,27.9,0,yes,southwest,16884.924\n18,male,33.77,1,no,southeast,1725.55\n",
     r"no header row; the first line looks like data"),
    ("binary file", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00" + bytes(range(256)), r"binary content"),
    ("not UTF-8", "age,sex,bmi,children,smoker,region,charges\n19,f\xe9male,27.9,0,yes,southwest,1\n".encode("latin-1"),
     r"not UTF-8 text"),
    ("semicolon delimiter", HEADER.replace(",", ";").encode() + b"\n19;female;27.9;0;yes;southwest;1\n",
     r"the delimiter is ';', expected a comma"),
    ("tab delimiter", HEADER.replace(",", "\t").encode() + b"\n19\tfemale\t27.9\t0\tyes\tsouthwest\t1\n",
     r"the delimiter is tab, expected a comma"),
    ("pipe delimiter", HEADER.replace(",", "|").encode() + b"\n", r"the delimiter is '\|', expected a comma"),
]


@pytest.mark.parametrize("content, message", [case[1:] for case in FILE_FAILURES],
                         ids=[case[0] for case in FILE_FAILURES])
def test_unreadable_file_fails_and_writes_nothing(settings, home, tmp_path, content, message):
    from healthcare_mlops.tasks.load_members import ingest_csv

    path = tmp_path / "members.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as failure:
        ingest_csv(cli_runtime(settings), path, AS_OF)
    assert str(failure.value).startswith(f"{path}: ")        # the message names the file
    assert "\n" not in str(failure.value)
    assert not home.exists(), "a file that cannot be read must write nothing"


def test_missing_file_and_directory(settings, home, tmp_path):
    from healthcare_mlops.tasks.load_members import ingest_csv

    with pytest.raises(UserError, match=r"nope\.csv: file not found"):
        ingest_csv(cli_runtime(settings), tmp_path / "nope.csv", AS_OF)
    with pytest.raises(UserError, match=r"cannot read"):
        ingest_csv(cli_runtime(settings), tmp_path, AS_OF)
    assert not home.exists()


# --- any record count: the staging's chunks -----------------------------------------------------

def chunk_sizes(chunk: int) -> list[int]:
    """Record counts around every chunk boundary: none, one, a chunk -1/0/+1, several chunks and a few."""
    return sorted({0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 2})


def member_lines(count: int, malformed_every: int = 0) -> list[str]:
    """``count`` records after the header; every ``malformed_every``-th has a field too many."""
    lines = [HEADER]
    for index in range(count):
        extra = ",x" if malformed_every and index % malformed_every == malformed_every - 1 else ""
        lines.append(f"{18 + index % 80},female,{20 + index % 50},0,no,southwest,{1000 + index}{extra}")
    return lines


def staged_rows(path: Path, staging: Path, chunk_rows: int):
    import pyarrow.parquet as pq

    from healthcare_mlops.data.csv_source import staged_insurance_csv

    with staged_insurance_csv(path, staging, chunk_rows=chunk_rows) as staged:
        return staged.rows, pq.read_table(staged.staged)


@pytest.mark.parametrize("chunk", [1, 2, 4, 7])
def test_every_record_count_around_the_chunk_boundaries_is_staged_whole(tmp_path, chunk):
    for count in chunk_sizes(chunk):
        for malformed_every in (0, 3):
            path = write_csv(tmp_path / f"members_{count}_{malformed_every}.csv", member_lines(count, malformed_every))
            rows, table = staged_rows(path, tmp_path / "staging", chunk)
            assert (rows, table.num_rows) == (count, count), (chunk, count, malformed_every)
            assert sorted(table.column("source_row").to_pylist()) == list(range(2, count + 2))
            bad = sum(1 for reason in table.column("malformed_reason").to_pylist() if reason)
            assert bad == (count // malformed_every if malformed_every else 0)


def test_record_counts_are_staged_whole_for_any_chunk_property(tmp_path_factory):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    @hypothesis.settings(max_examples=40, deadline=None)
    @hypothesis.given(chunk=st.integers(1, 9), count=st.integers(0, 40), malformed_every=st.integers(0, 5))
    def check(chunk, count, malformed_every):
        root = tmp_path_factory.mktemp("chunks")
        path = write_csv(root / "members.csv", member_lines(count, malformed_every))
        rows, table = staged_rows(path, root / "staging", chunk)
        assert (rows, table.num_rows) == (count, count)

    check()


def test_a_file_of_one_record_past_the_default_chunk_is_staged_whole(tmp_path):
    from healthcare_mlops.data.csv_source import CHUNK_ROWS

    path = write_csv(tmp_path / "members.csv", member_lines(CHUNK_ROWS + 1), bom=False, newline="\n")
    rows, table = staged_rows(path, tmp_path / "staging", CHUNK_ROWS)
    assert (rows, table.num_rows) == (CHUNK_ROWS + 1, CHUNK_ROWS + 1)
    assert table.column("source_row").to_pylist()[-1] == CHUNK_ROWS + 2


def test_a_load_of_several_small_chunks_and_a_few_loads_every_row(spark, settings, tmp_path):
    from healthcare_mlops.tasks.load_members import ingest_csv

    path = write_csv(tmp_path / "members.csv", member_lines(3 * 4 + 2, malformed_every=5))
    report = ingest_csv(cli_runtime(settings), path, AS_OF, chunk_rows=4)
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (14, 12, 2)


def test_a_valid_row_is_never_a_duplicate_of_a_refused_one(spark, settings, tmp_path):
    from healthcare_mlops.tasks.load_members import ingest_csv

    lines = [HEADER, "30,male,30,0,no,southwest,abc", "30,male,30,0,no,southwest,",
             "31,male,30,0,no,southwest,", "31,male,30,0,no,southwest,"]
    report = ingest_csv(cli_runtime(settings), write_csv(tmp_path / "members.csv", lines), AS_OF)
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (4, 2, 2)
    reasons = frame(settings, DATA_QUALITY_QUARANTINE).set_index("source_row")["reason"].to_dict()
    assert reasons[2] == "not a number: 'abc'" and reasons[5] == "duplicate of source row 4"


def test_a_latin1_byte_is_reported_on_its_own_line(tmp_path):
    from healthcare_mlops.data.csv_source import staged_insurance_csv

    lines = member_lines(3100)
    lines[3001] = "30,f\xe9male,30,0,no,southwest,2000"          # line 3002, past the sniffed head
    path = tmp_path / "latin1.csv"
    path.write_bytes("\n".join(lines).encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.csv: not UTF-8 text: line 3002, byte 5 "):
        with staged_insurance_csv(path, tmp_path / "staging"):
            pass


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    import os

    from healthcare_mlops.data.csv_source import staged_insurance_csv

    fifo = tmp_path / "members.csv"
    os.mkfifo(fifo)       # nothing ever writes to it: opening it for reading would block for ever
    with pytest.raises(UserError, match=r"members\.csv: not a regular file \(a pipe, socket or device\)"):
        with staged_insurance_csv(fifo, tmp_path / "staging"):
            pass


# --- keys from content: no file name, no line order ---------------------------------------------

def silver_keys(settings) -> dict[tuple, str]:
    """Each loaded member's values -> key (no charges: -1, as NaN never equals itself)."""
    rows = frame(settings, SILVER_PATIENTS).fillna({"annual_charges": -1.0})
    values = ["age", "sex", "bmi", "children", "smoker", "region", "annual_charges"]
    return {tuple(row[values]): row["patient_natural_key"] for _, row in rows.iterrows()}


def test_the_same_rows_shuffled_under_another_name_and_date_are_the_same_members(spark, tmp_path):
    from healthcare_mlops.tasks.load_members import ingest_csv

    lines = GOOD_LINES[:6] + [GOOD_LINES[5]] + GOOD_LINES[6:]       # line 6 twice: the repeat is quarantined
    shuffled = [HEADER] + list(reversed([line.replace(" ", "").upper() for line in lines[1:] if line]))
    first = resolve_settings("local", tmp_path / "first")
    second = resolve_settings("local", tmp_path / "second")
    ingest_csv(cli_runtime(first), write_csv(tmp_path / "insurance.csv", lines), AS_OF)
    ingest_csv(cli_runtime(second), write_csv(tmp_path / "members_export.csv", shuffled, bom=False),
               dt.date(2025, 9, 15))
    assert silver_keys(first) == silver_keys(second) and len(silver_keys(first)) == len(GOOD_EXPECTED)
    repeats = [frame(s, DATA_QUALITY_QUARANTINE).iloc[0] for s in (first, second)]
    assert repeats[0]["record_key"] == repeats[1]["record_key"] not in silver_keys(first).values()


def test_a_member_in_two_files_of_one_date_is_loaded_once(spark, settings, tmp_path):
    from healthcare_mlops.tasks.load_members import ingest_csv

    first = ingest_csv(cli_runtime(settings), write_csv(tmp_path / "a.csv", GOOD_LINES[:4]), AS_OF)
    second = ingest_csv(cli_runtime(settings), write_csv(tmp_path / "b.csv", [HEADER, GOOD_LINES[3], OK]), AS_OF)
    assert (first.rows_loaded, second.rows_loaded, second.rows_quarantined) == (3, 1, 1)
    row = frame(settings, DATA_QUALITY_QUARANTINE).iloc[0]
    assert (row["source_row"], row["column_name"]) == (2, "row")
    assert row["reason"] == f"member already loaded for 2025-03-01 from {tmp_path / 'a.csv'}"
    with pytest.raises(UserError, match=r"the same content was already loaded for 2025-03-01 from .*a\.csv"):
        ingest_csv(cli_runtime(settings), write_csv(tmp_path / "copy_of_a.csv", GOOD_LINES[:4]), AS_OF)
