"""The CSV staging reads every file as Python's ``csv`` module reads it, block by block.

``data/csv_source.py`` splits lines and fields with Arrow's kernels, in blocks of whole lines;
these tests compare what it stages with what the ``csv`` module reads from the same bytes
(line numbers, fields, malformed rows and their reasons), at block sizes small enough that a
block ends inside a line, between the two bytes of a CRLF, or holds no line break at all.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from healthcare_mlops.data import csv_source
from healthcare_mlops.errors import UserError

HEADER = "age,sex,bmi,children,smoker,region,charges"
SPANS = "a quoted field runs past the end of the line"


@contextlib.contextmanager
def block_bytes(size: int):
    """Stage with blocks of ``size`` bytes (the module's constant, restored after)."""
    default = csv_source.BLOCK_BYTES
    csv_source.BLOCK_BYTES = size
    try:
        yield
    finally:
        csv_source.BLOCK_BYTES = default


def csv_module_reading(data: bytes) -> dict[int, list[str]] | None:
    """line -> fields of each record after the header, as the csv module reads ``data``; None when
    a quoted field holds a line break or is still open where the file ends, which the staging
    refuses (the last line is read as ending with a line break)."""
    data = data if data.endswith((b"\n", b"\r")) else data + b"\n"
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=""))
    next(reader)
    records, last = {}, reader.line_num
    for fields in reader:
        if reader.line_num - last > 1 or any("\n" in field or "\r" in field for field in fields):
            return None
        last = reader.line_num
        if fields and (len(fields) > 1 or fields[0].strip()):
            records[reader.line_num] = fields
    return records


def staged_reading(tmp_path, data: bytes, size: int) -> dict[int, list[str]]:
    """line -> fields as staged: a well-formed row's raw columns, or a malformed row's record."""
    path = tmp_path / "members.csv"
    path.write_bytes(data)
    with block_bytes(size), csv_source.staged_insurance_csv(path, tmp_path / "staging", chunk_rows=3) as staged:
        table = pq.read_table(staged.staged).to_pylist()
        assert staged.rows == len(table)
    records = {}
    for row in table:
        if row["malformed_reason"]:
            fields = json.loads(row["malformed_record"])
            assert row["malformed_reason"] == f"row has {len(fields)} fields, expected 7"
        else:
            fields = [row[name] for name in staged.fields]
        assert row["source_row"] not in records
        records[row["source_row"]] = fields
    return records


def check_same_reading(tmp_path, data: bytes, size: int) -> None:
    expected = csv_module_reading(data)
    if expected is None:
        with pytest.raises(UserError, match=SPANS):
            staged_reading(tmp_path, data, size)
    else:
        assert staged_reading(tmp_path, data, size) == expected


HOSTILE = [
    ("CRLF, BOM, quotes", b'\xef\xbb\xbf' + HEADER.encode() + b'\r\n"1,5",a,b,c,d,e,f\r\n\r\n1,2,3,4,5,6,7\r\n'),
    ("bare CR line breaks", HEADER.encode() + b"\r1,2,3,4,5,6,7\r\r 8,9,1,2,3,4,5\r"),
    ("mixed line breaks, no last one", HEADER.encode() + b"\n1,2,3,4,5,6,7\r\n1,2\r3,4,5,6,7,8,9"),
    ("blank and whitespace lines", HEADER.encode() + b"\n \n\t\n,\n\"\"\n1,2,3,4,5,6,7\n"),
    ("quote inside a field, doubled quotes", HEADER.encode() + b'\na"b,"x""y",3,4,5,6,7\n"a"b,2,3,4,5,6,7\n'),
    ("non-ASCII in fields", HEADER.encode() + "\n1,mäle,3,4,5,6,7\nä,ö,ü,4,5,6,7,8\n".encode()),
    ("too few and too many", HEADER.encode() + b"\n1,2,3\n1,2,3,4,5,6,7,8,9\n1,2,3,4,5,6,7\n"),
]


@pytest.mark.parametrize("size", [1, 2, 5, 1 << 20])
@pytest.mark.parametrize("data", [case[1] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_staging_reads_as_the_csv_module_does(tmp_path, data, size):
    check_same_reading(tmp_path, data, size)


def test_staging_reads_as_the_csv_module_does_property(tmp_path_factory):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    field = st.text(alphabet="1a é,\"", max_size=4)
    line = st.one_of(st.lists(field, min_size=7, max_size=7).map(",".join), st.text(alphabet='1a ,"\t', max_size=12))
    breaks = st.sampled_from(["\n", "\r\n", "\r"])

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(lines=st.lists(st.tuples(line, breaks), max_size=12), last=st.booleans(),
                      size=st.integers(1, 40))
    def check(lines, last, size):
        body = "".join(text + end for text, end in lines)
        data = (HEADER + "\n" + (body if last else body.rstrip("\r\n"))).encode()
        check_same_reading(tmp_path_factory.mktemp("property"), data, size)

    check()


def test_a_quoted_field_across_lines_is_refused_with_its_line(tmp_path):
    path = tmp_path / "members.csv"
    path.write_bytes((HEADER + '\n1,2,3,4,5,6,7\n1,"two\nlines",3,4,5,6,7\n').encode())
    with pytest.raises(UserError, match=rf"members\.csv: not readable as CSV at line 3: {SPANS}"):
        with csv_source.staged_insurance_csv(path, tmp_path / "staging"):
            pass


def test_a_line_longer_than_a_block_and_a_field_over_the_csv_limit(tmp_path):
    long_line = ",".join(["x" * 50_000] * 7)                        # fields within the limit: one row
    check_same_reading(tmp_path, (HEADER + "\n" + long_line + "\n1,2,3,4,5,6,7\n").encode(), 4096)
    path = tmp_path / "huge.csv"
    path.write_bytes((HEADER + "\n1,2,3,4,5,6,7\n" + "y" * (csv.field_size_limit() + 1) + "\n").encode())
    with pytest.raises(UserError, match=r"huge\.csv: not readable as CSV at line 3: field larger than field limit"):
        with csv_source.staged_insurance_csv(path, tmp_path / "staging"):
            pass


@pytest.mark.parametrize("size", [4093, 1 << 20])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_a_byte_that_is_not_utf8_is_named_by_its_line_whatever_the_line_breaks(tmp_path, size, newline):
    good = [b"1,2,3,4,5,6,7", b""] * 5000                 # past the sniffed head: the blocks find it
    lines = [HEADER.encode(), *good, b"3,f\xe9male,4,5,6,7,8", b"4,5,6,7,8,9,1"]
    path = tmp_path / "latin1.csv"
    path.write_bytes(newline.join(lines) + newline)
    with block_bytes(size), pytest.raises(UserError, match=r"latin1\.csv: not UTF-8 text: line 10002, byte 4 "):
        with csv_source.staged_insurance_csv(path, tmp_path / "staging"):
            pass
