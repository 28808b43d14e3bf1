"""Stage a CSV in the public insurance-charges format as Parquet of raw string columns, streaming.

A file that is not this format at all (unreadable, empty, binary, no header, another
delimiter, missing or misspelled columns) raises ``UserError`` naming the problem
before anything is written. Row-level problems are not decided here: a row with the
wrong number of fields is staged as malformed with its reason, every other row as raw
strings for the validation to judge. A UTF-8 BOM, CRLF line endings, spaces around
values and upper-case values are accepted.

The file is never held whole: it is parsed line by line (Python's ``csv`` module, so a
row keeps its line number) and written to the staged Parquet every ``CHUNK_ROWS`` rows,
hashing the bytes on the way; driver memory stays fixed whatever the file's size. Spark
then reads the staged file like any other.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from healthcare_mlops.data.contract import SOURCE_COLUMNS
from healthcare_mlops.errors import UserError

SNIFF_BYTES = 64 * 1024
READ_BUFFER_BYTES = 1 << 20
CHUNK_ROWS = 200_000
OTHER_DELIMITERS = (";", "\t", "|")
# The staged rows: raw strings of a well-formed row, or the reason and fields of a malformed one.
STAGED_SCHEMA = pa.schema([*[(f"raw_{c}", pa.string()) for c in SOURCE_COLUMNS], ("source_row", pa.int64()),
                           ("malformed_reason", pa.string()), ("malformed_record", pa.string())])


@dataclass(frozen=True)
class StagedCsv:
    """A CSV staged for Spark: where the rows are, the file's column order and its content hash."""

    path: Path                 # the source file, resolved
    fingerprint: str           # sha256 of its bytes
    header: tuple[str, ...]    # the file's columns in file order (lower case)
    staged: Path               # Parquet with STAGED_SCHEMA
    rows: int                  # records read (blank lines are not records)


class _HashingReader(io.RawIOBase):
    """Passes a binary file through, hashing every byte read (one pass gives rows and fingerprint)."""

    def __init__(self, raw):
        self._raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count


class _ChunkWriter:
    """Collects rows and writes them to the staged Parquet every ``CHUNK_ROWS`` rows."""

    def __init__(self, target: Path, positions: dict[str, int]):
        self.target = target
        self.positions = positions
        self.rows = 0
        self._good, self._good_lines, self._bad = [], [], []
        self._writer: pq.ParquetWriter | None = None

    def good(self, fields: list[str], line: int) -> None:
        self._good.append(fields)
        self._good_lines.append(line)
        self._count()

    def malformed(self, fields: list[str], line: int, reason: str) -> None:
        self._bad.append((line, reason, json.dumps(fields)))
        self._count()

    def _count(self) -> None:
        self.rows += 1
        if len(self._good) + len(self._bad) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the collected rows (an empty file with the schema when there were none)."""
        columns = list(zip(*self._good)) if self._good else [()] * (max(self.positions.values()) + 1)
        good = {f"raw_{c}": pa.array(columns[p], pa.string()) for c, p in self.positions.items()}
        lines, reasons, records = zip(*self._bad) if self._bad else ((), (), ())
        table = pa.table({
            **{name: pa.concat_arrays([values, pa.nulls(len(lines), pa.string())]) for name, values in good.items()},
            "source_row": pa.array(self._good_lines + list(lines), pa.int64()),
            "malformed_reason": pa.array([None] * len(self._good) + list(reasons), pa.string()),
            "malformed_record": pa.array([None] * len(self._good) + list(records), pa.string()),
        }, schema=STAGED_SCHEMA)
        if self._writer is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.target, STAGED_SCHEMA)
        self._writer.write_table(table)
        self._good, self._good_lines, self._bad = [], [], []

    def close(self) -> None:
        if self._writer is None:
            self.flush()
        self._writer.close()


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


@contextlib.contextmanager
def staged_insurance_csv(path: str | Path, staging_root: Path) -> Iterator[StagedCsv]:
    """Stage ``path`` under ``staging_root`` for the duration of the block, then remove it.

    Raises ``UserError`` when the file cannot be read as the insurance format; all such
    errors come out of the staging pass, before the caller writes any table.
    """
    path = Path(path)
    target = staging_root / f"{uuid.uuid4().hex}.parquet"
    try:
        yield _stage(path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):   # a file refused at its header stages nothing
            target.unlink()
        with contextlib.suppress(OSError):             # other loads may be staging beside it
            staging_root.rmdir()


def _stage(path: Path, target: Path) -> StagedCsv:
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from exc
    with raw:
        _check_text(path, raw.read(SNIFF_BYTES))
        raw.seek(0)
        hashing = _HashingReader(raw)
        text = io.TextIOWrapper(io.BufferedReader(hashing, READ_BUFFER_BYTES), encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        try:
            header = next(reader)
            positions = _check_header(path, header)
            writer = _ChunkWriter(target, positions)
            _stream_rows(reader, writer, len(header))
            writer.close()
        except csv.Error as exc:
            raise UserError(f"{path}: not readable as CSV at line {reader.line_num}: {exc}") from exc
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text (after line {reader.line_num})") from None
    return StagedCsv(path=path.resolve(), fingerprint=hashing.digest.hexdigest(),
                     header=tuple(h.strip().lower() for h in header), staged=target, rows=writer.rows)


def _stream_rows(reader, writer: _ChunkWriter, width: int) -> None:
    """Every record after the header to ``writer``: well-formed, or malformed with its reason."""
    for fields in reader:
        if not fields or len(fields) <= 1 and not fields[0].strip():
            continue  # a blank line is not a record
        if len(fields) == width:
            writer.good(fields, reader.line_num)
        else:
            writer.malformed(fields, reader.line_num, f"row has {len(fields)} fields, expected {width}")

