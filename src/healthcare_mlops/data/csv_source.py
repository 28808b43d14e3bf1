"""Read a CSV in the public insurance-charges format into raw string columns.

A file that is not this format at all (unreadable, empty, binary, no header, another
delimiter, missing or misspelled columns) raises ``UserError`` naming the problem
before anything is written. Row-level problems are not decided here: a row with the
wrong number of fields is returned as malformed, every other row as raw strings for
the validation to judge. A UTF-8 BOM, CRLF line endings, spaces around values and
upper-case values are accepted.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from healthcare_mlops.data.contract import SOURCE_COLUMNS
from healthcare_mlops.errors import UserError

SNIFF_BYTES = 64 * 1024
OTHER_DELIMITERS = (";", "\t", "|")


@dataclass(frozen=True)
class CsvRows:
    """What a CSV file holds: parseable rows as raw strings, and malformed rows."""

    source: str
    fingerprint: str
    rows: pa.Table          # raw_<column> strings, source_row, raw_record
    malformed: list[dict]   # source_row, reason, raw_record


def _check_text(path: Path, head: bytes) -> None:
    if not head.strip(b"\xef\xbb\xbf \t\r\n"):
        raise UserError(f"{path}: the file is empty")
    if b"\x00" in head:
        raise UserError(f"{path}: binary content (NUL bytes), not a CSV text file")
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is fine; anything earlier is not.
        if exc.start < len(head) - 4:
            raise UserError(f"{path}: not UTF-8 text (byte {exc.start}), not a CSV text file") from exc


def _check_header(path: Path, header: list[str]) -> dict[str, int]:
    """Map each required column to its position; explain what is wrong otherwise."""
    names = [h.strip().lower() for h in header]
    if len(names) == 1:
        for delimiter in OTHER_DELIMITERS:
            if delimiter in names[0]:
                shown = "tab" if delimiter == "\t" else f"'{delimiter}'"
                raise UserError(f"{path}: the delimiter is {shown}, expected a comma")
    if names and all(_looks_like_value(n) for n in names if n):
        raise UserError(f"{path}: no header row; the first line looks like data "
                        f"(expected a header: {','.join(SOURCE_COLUMNS)})")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"{path}: duplicate columns in the header: {', '.join(duplicates)}")
    unknown = [n for n in names if n not in SOURCE_COLUMNS]
    missing = [c for c in SOURCE_COLUMNS if c not in names]
    if unknown or missing:
        problems = []
        for name in unknown:
            guess = difflib.get_close_matches(name, missing or SOURCE_COLUMNS, n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            problems.append(f"unknown column '{name}'{hint}")
        if missing:
            problems.append(f"missing columns: {', '.join(missing)}")
        raise UserError(f"{path}: " + "; ".join(problems))
    return {name: names.index(name) for name in SOURCE_COLUMNS}


def _looks_like_value(text: str) -> bool:
    text = text.strip().lower()
    try:
        float(text)
        return True
    except ValueError:
        return text in {"male", "female", "yes", "no", "northeast", "northwest", "southeast", "southwest"}


def read_insurance_csv(path: str | Path) -> CsvRows:
    """Read ``path``; raise ``UserError`` if it cannot be read as the insurance format."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from exc
    _check_text(path, data[:SNIFF_BYTES])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        positions = _check_header(path, header)
        columns = {c: [] for c in SOURCE_COLUMNS}
        rows, records, malformed = [], [], []
        for fields in reader:
            line = reader.line_num
            if not fields or all(not f.strip() for f in fields) and len(fields) <= 1:
                continue  # a blank line is not a record
            record = json.dumps(fields)
            if len(fields) != len(header):
                malformed.append({"source_row": line, "raw_record": record,
                                  "reason": f"row has {len(fields)} fields, expected {len(header)}"})
                continue
            for column, position in positions.items():
                columns[column].append(fields[position])
            rows.append(line)
            records.append(record)
    except csv.Error as exc:
        raise UserError(f"{path}: not readable as CSV at line {reader.line_num}: {exc}") from exc
    table = pa.table({**{f"raw_{c}": pa.array(v, pa.string()) for c, v in columns.items()},
                      "source_row": pa.array(rows, pa.int64()),
                      "raw_record": pa.array(records, pa.string())})
    return CsvRows(source=path.name, fingerprint=hashlib.sha256(data).hexdigest()[:12],
                   rows=table, malformed=malformed)
