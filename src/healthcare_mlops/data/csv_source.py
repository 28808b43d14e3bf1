"""Stage a CSV in the public insurance-charges format as Parquet of raw string columns, streaming.

The format: a header naming the seven columns of the public table in any order, and
optionally a member-id column (its name is the caller's: ``member_id`` by default); no
other column.

A file that is not this format at all (unreadable, empty, binary, no header, another
delimiter, missing or misspelled columns) raises ``UserError`` naming the problem
before anything is written. Row-level problems are not decided here: a row with the
wrong number of fields is staged as malformed with its reason, every other row as raw
strings for the validation to judge. A UTF-8 BOM, CRLF line endings, spaces around
values and upper-case values are accepted.

The file is never held whole: it is parsed line by line (Python's ``csv`` module, so a
row keeps its line number) and written to the staged Parquet every ``CHUNK_ROWS`` rows,
hashing the bytes on the way, and the last partial chunk when the file ends; driver memory
stays fixed whatever the file's size. Spark then reads the staged file like any other.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import hashlib
import io
import json
import shutil
import stat
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
MEMBER_ID = "member_id"       # the staged name of the member-id column, whatever the file calls it
DEFAULT_MEMBER_ID_COLUMN = MEMBER_ID
STAGED_FIELDS = (*SOURCE_COLUMNS, MEMBER_ID)
# The staged rows: raw strings of a well-formed row (the id null in a file without ids), or the
# reason and fields of a malformed one.
STAGED_SCHEMA = pa.schema([*[(f"raw_{c}", pa.string()) for c in STAGED_FIELDS], ("source_row", pa.int64()),
                           ("malformed_reason", pa.string()), ("malformed_record", pa.string())])


@dataclass(frozen=True)
class StagedCsv:
    """A CSV staged for Spark: where the rows are, the file's column order and its content hash."""

    path: Path                 # the source file, resolved
    fingerprint: str           # sha256 of its bytes
    header: tuple[str, ...]    # the file's columns in file order (lower case)
    staged: Path               # Parquet with STAGED_SCHEMA
    rows: int                  # records read (blank lines are not records)
    fields: tuple[str, ...]    # the staged raw_* columns in the file's order
    member_ids: bool           # whether the file has a member-id column


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
    """Collects rows and writes them to the staged Parquet every ``chunk_rows`` rows."""

    def __init__(self, target: Path, positions: dict[str, int], chunk_rows: int = CHUNK_ROWS):
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
        self.target = target
        self.positions = positions
        self.chunk_rows = chunk_rows
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
        if len(self._good) + len(self._bad) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        """Write the collected rows (an empty file with the schema when there were none)."""
        columns = list(zip(*self._good)) if self._good else [()] * (max(self.positions.values()) + 1)
        good = {f"raw_{c}": pa.array(columns[self.positions[c]], pa.string()) if c in self.positions
                else pa.nulls(len(self._good), pa.string()) for c in STAGED_FIELDS}
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
        """Write the rows of the last, partial chunk (or the empty file), then finish the file."""
        if self._writer is None or self._good or self._bad:
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


def _check_header(path: Path, header: list[str], id_column: str) -> dict[str, int]:
    """Map each column to its position (the member-id column as ``member_id``); explain what is wrong otherwise."""
    names = [h.strip().lower() for h in header]
    id_column = id_column.strip().lower()
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
    unknown = [n for n in names if n not in SOURCE_COLUMNS and n != id_column]
    missing = [c for c in SOURCE_COLUMNS if c not in names]
    if unknown or missing:
        problems = []
        for name in unknown:
            guess = difflib.get_close_matches(name, missing or (*SOURCE_COLUMNS, id_column), n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            problems.append(f"unknown column '{name}'{hint}")
        if missing:
            problems.append(f"missing columns: {', '.join(missing)}")
        raise UserError(f"{path}: " + "; ".join(problems))
    positions = {name: names.index(name) for name in SOURCE_COLUMNS}
    return positions | ({MEMBER_ID: names.index(id_column)} if id_column in names else {})


def _looks_like_value(text: str) -> bool:
    text = text.strip().lower()
    try:
        float(text)
        return True
    except ValueError:
        return text in {"male", "female", "yes", "no", "northeast", "northwest", "southeast", "southwest"}


@contextlib.contextmanager
def staged_insurance_csv(path: str | Path, staging_root: Path, chunk_rows: int = CHUNK_ROWS,
                         id_column: str = DEFAULT_MEMBER_ID_COLUMN) -> Iterator[StagedCsv]:
    """Stage ``path`` under ``staging_root`` for the duration of the block, then remove it (and
    whatever the load wrote beside it under the staged file's name).

    ``id_column``: the name of the optional member-id column; ``chunk_rows``: rows per write.

    Raises ``UserError`` when the file cannot be read as the insurance format; all such
    errors come out of the staging pass, before the caller writes any table.
    """
    path = Path(path)
    target = staging_root / f"{uuid.uuid4().hex}.parquet"
    try:
        yield _stage(path, target, chunk_rows, id_column)
    finally:
        for leftover in staging_root.glob(f"{target.stem}*"):  # the staged file and what a load spooled beside it
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        with contextlib.suppress(OSError):             # other loads may be staging beside it
            staging_root.rmdir()


def _open_regular(path: Path):
    """The file opened for reading, refused unless it is a regular file.

    A FIFO, socket or device would block the open or the read (nothing may ever write to
    it) and cannot be read twice (the sniff, then the pass), so it is refused before the
    open; a directory is refused by the open."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from exc
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise UserError(f"{path}: not a regular file (a pipe, socket or device); save the CSV to a file "
                        "and load that")
    try:
        return path.open("rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from exc


def _first_non_utf8(path: Path) -> tuple[int, int]:
    """(line, byte in that line), 1-based, of the first byte that is not UTF-8.

    Read again on the error path only: the decoder reads ahead of the CSV parser, so the
    parser's line number at the error is not the line that holds the byte."""
    with path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, exc.start + 1
    return 0, 0


def _stage(path: Path, target: Path, chunk_rows: int, id_column: str) -> StagedCsv:
    with _open_regular(path) as raw:
        _check_text(path, raw.read(SNIFF_BYTES))
        raw.seek(0)
        hashing = _HashingReader(raw)
        text = io.TextIOWrapper(io.BufferedReader(hashing, READ_BUFFER_BYTES), encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        try:
            header = next(reader)
            positions = _check_header(path, header, id_column)
            writer = _ChunkWriter(target, positions, chunk_rows)
            _stream_rows(reader, writer, len(header))
            writer.close()
        except csv.Error as exc:
            raise UserError(f"{path}: not readable as CSV at line {reader.line_num}: {exc}") from exc
        except UnicodeDecodeError:
            line, byte = _first_non_utf8(path)
            raise UserError(f"{path}: not UTF-8 text: line {line}, byte {byte} (save the file as UTF-8)") from None
    return StagedCsv(path=path.resolve(), fingerprint=hashing.digest.hexdigest(),
                     header=tuple(h.strip().lower() for h in header), staged=target, rows=writer.rows,
                     fields=tuple(f"raw_{name}" for name, _ in sorted(positions.items(), key=lambda item: item[1])),
                     member_ids=MEMBER_ID in positions)


def _stream_rows(reader, writer: _ChunkWriter, width: int) -> None:
    """Every record after the header to ``writer``: well-formed, or malformed with its reason."""
    for fields in reader:
        if not fields or len(fields) <= 1 and not fields[0].strip():
            continue  # a blank line is not a record
        if len(fields) == width:
            writer.good(fields, reader.line_num)
        else:
            writer.malformed(fields, reader.line_num, f"row has {len(fields)} fields, expected {width}")

