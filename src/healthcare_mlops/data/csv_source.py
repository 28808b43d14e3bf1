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

The file is never held whole: it is read in blocks of whole lines (``BLOCK_BYTES``), hashing
the bytes on the way, and each block is split into lines and fields by Arrow's compute kernels,
not line by line in Python; driver memory stays fixed whatever the file's size. A record is one
line, so a row keeps its line number: a quoted field that runs past the end of its line is
refused with its line. Lines with quotes, very long lines and lines that are not one field per
column (blank or malformed: few) are read by Python's ``csv`` module, so every row is read as
the module reads it. The staged Parquet gets ``CHUNK_ROWS`` rows per row group; Spark or DuckDB
then reads it like any other.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import hashlib
import json
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from healthcare_mlops.data.contract import SOURCE_COLUMNS
from healthcare_mlops.errors import UserError

SNIFF_BYTES = 64 * 1024
BLOCK_BYTES = 8 << 20          # text read and split per step: memory stays fixed
CHUNK_ROWS = 200_000          # rows per row group of the staged Parquet
LARGE_TEXT = 1 << 28          # characters: up to 4 bytes each, within 32-bit offsets
FIELD_LIMIT = csv.field_size_limit()   # a longer line goes to the csv module, which refuses a longer field
OTHER_DELIMITERS = (";", "\t", "|")
MEMBER_ID = "member_id"       # the staged name of the member-id column, whatever the file calls it
DEFAULT_MEMBER_ID_COLUMN = MEMBER_ID
STAGED_FIELDS = (*SOURCE_COLUMNS, MEMBER_ID)
FEW_VALUES = ("age", "sex", "children", "smoker", "region")   # columns whose values repeat in any real file
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


class _StagedWriter:
    """Writes the staged rows to Parquet as they come, ``chunk_rows`` rows per row group."""

    def __init__(self, target: Path, positions: dict[str, int], chunk_rows: int):
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
        self.target, self.positions, self.chunk_rows = target, positions, chunk_rows
        self.rows = 0
        target.parent.mkdir(parents=True, exist_ok=True)
        # read once, soon after, whole: no codec, no statistics; dictionaries only for the columns of
        # a few distinct values, which DuckDB then parses once per value (1M rows: 0.04 CPU s more
        # here, 0.24 s less there; benchmarks/README.md)
        self._writer = pq.ParquetWriter(target, STAGED_SCHEMA, compression="none", write_statistics=False,
                                       use_dictionary=[f"raw_{c}" for c in FEW_VALUES])

    def write(self, good: list[pa.Array], good_lines: pa.Array, bad: list[tuple[int, str, str]]) -> None:
        """Well-formed rows (one array per file column, their line numbers) and malformed ones."""
        lines, reasons, records = zip(*bad) if bad else ((), (), ())
        empty = pa.nulls(len(lines), pa.string())
        columns = {f"raw_{c}": pa.concat_arrays([good[self.positions[c]], empty]) if c in self.positions
                   else pa.nulls(len(good_lines) + len(lines), pa.string()) for c in STAGED_FIELDS}
        nothing = pa.nulls(len(good_lines), pa.string())
        table = pa.table({**columns,
                          "source_row": pa.concat_arrays([good_lines, pa.array(lines, pa.int64())]),
                          "malformed_reason": pa.concat_arrays([nothing, pa.array(reasons, pa.string())]),
                          "malformed_record": pa.concat_arrays([nothing, pa.array(records, pa.string())])},
                         schema=STAGED_SCHEMA)
        self.rows += table.num_rows
        if table.num_rows:
            self._writer.write_table(table, row_group_size=self.chunk_rows)

    def close(self) -> None:
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

    ``id_column``: the name of the optional member-id column; ``chunk_rows``: rows per row group.

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


def _stage(path: Path, target: Path, chunk_rows: int, id_column: str) -> StagedCsv:
    with _open_regular(path) as raw:
        _check_text(path, raw.read(SNIFF_BYTES))
        raw.seek(0)
        digest = hashlib.sha256()
        blocks = _text_blocks(path, raw, digest)
        first_line, text = next(blocks)          # the sniff saw text: there is a first block
        end = text.index("\n")
        header = _record(path, text[:end], first_line)
        positions = _check_header(path, header, id_column)
        writer = _StagedWriter(target, positions, chunk_rows)
        try:
            _stage_block(path, text[end + 1:], first_line + 1, len(header), writer)
            for first_line, text in blocks:
                _stage_block(path, text, first_line, len(header), writer)
        finally:
            writer.close()
    return StagedCsv(path=path.resolve(), fingerprint=digest.hexdigest(),
                     header=tuple(h.strip().lower() for h in header), staged=target, rows=writer.rows,
                     fields=tuple(f"raw_{name}" for name, _ in sorted(positions.items(), key=lambda item: item[1])),
                     member_ids=MEMBER_ID in positions)


def _text_blocks(path: Path, raw, digest) -> Iterator[tuple[int, str]]:
    """The file as text in blocks of whole lines, each with its first line's number, hashing every byte.

    Line breaks are the ``csv`` module's (``\\r\\n``, ``\\r`` or ``\\n``), each made ``\\n``; every
    block, the last too, ends with one. A line is never cut, however long."""
    pending: list[bytes] = []
    line, decoding = 1, "utf-8-sig"                    # a byte-order mark only at the start
    while data := raw.read(BLOCK_BYTES):
        digest.update(data)
        # the last line break of the read (a "\\r" at its very end may be the first half of "\\r\\n")
        cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
        if not cut:
            pending.append(data)
            continue
        text = _decoded(path, b"".join([*pending, data[:cut]]), decoding, line)
        pending, decoding = [data[cut:]], "utf-8"
        yield line, text
        line += text.count("\n")
    rest = b"".join(pending)
    if rest:
        text = _decoded(path, rest, decoding, line)
        yield line, text if text.endswith("\n") else text + "\n"


def _decoded(path: Path, data: bytes, encoding: str, first_line: int) -> str:
    """``data`` (whole lines from ``first_line`` on) as text, its line breaks made ``\\n``; a byte
    that is not UTF-8 refuses the file, named by its line and its byte in that line (1-based)."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        before = exc.object[:exc.start]                # after a byte-order mark, if any
        line = first_line + before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n")
        byte = exc.start - max(before.rfind(b"\n"), before.rfind(b"\r"))
        raise UserError(f"{path}: not UTF-8 text: line {line}, byte {byte} (save the file as UTF-8)") from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _record(path: Path, line: str, number: int) -> list[str]:
    """The fields of one line as the ``csv`` module reads them; a quoted field may not run past the line."""
    try:
        fields = next(csv.reader([line + "\n"]))
    except csv.Error as exc:
        raise UserError(f"{path}: not readable as CSV at line {number}: {exc}") from exc
    if any("\n" in field for field in fields):
        raise UserError(f"{path}: not readable as CSV at line {number}: a quoted field runs past the end of "
                        "the line (line breaks inside quotes are not allowed)")
    return fields


def _stage_block(path: Path, text: str, first_line: int, width: int, writer: _StagedWriter) -> None:
    """Every record of ``text`` (whole lines) to ``writer``: well-formed, or malformed with its reason.

    A line without quotes, within the ``csv`` module's field limit and with ``width - 1`` commas is
    split on commas by Arrow, which is what the module would read; the rest (quotes, very long
    lines, blank lines, malformed rows: few) are read by the module itself."""
    kind = pa.string() if len(text) < LARGE_TEXT else pa.large_string()   # a block is large only for a huge line
    lines = pc.split_pattern(pa.array([text], kind), "\n").flatten()
    lines = lines.slice(0, len(lines) - 1)             # what follows the last line break: nothing
    numbers = pa.array(np.arange(first_line, first_line + len(lines), dtype=np.int64))
    # a line Arrow splits: no quote (none in most blocks at all), within the limit, width - 1 commas
    split = pc.and_(pc.equal(pc.count_substring(lines, ","), width - 1),
                    pc.less_equal(pc.binary_length(lines), FIELD_LIMIT))
    if '"' in text:
        split = pc.and_not(split, pc.match_substring(lines, '"'))
    (plain_lines, other_lines), (plain_numbers, other_numbers) = _parted(split, lines, numbers)
    values = pc.split_pattern(plain_lines, ",").flatten()      # width values a line, line after line
    good = [values.take(pa.array(np.arange(index, len(values), width))).cast(pa.string()) for index in range(width)]
    others = zip(other_lines.to_pylist(), other_numbers.to_pylist())
    extra, extra_lines, bad = [], [], []
    for line, number in others:
        record = _record(path, line, number)
        if not record or len(record) == 1 and not record[0].strip():
            continue                                   # a blank line is not a record
        if len(record) == width:
            extra.append(record)
            extra_lines.append(number)
        else:
            bad.append((number, f"row has {len(record)} fields, expected {width}", json.dumps(record)))
    if extra:
        good = [pa.concat_arrays([column, pa.array(values, pa.string())]) for column, values in zip(good, zip(*extra))]
    writer.write(good, pa.concat_arrays([plain_numbers, pa.array(extra_lines, pa.int64())]), bad)


def _parted(mask: pa.Array, *arrays: pa.Array) -> list[tuple[pa.Array, pa.Array]]:
    """Each array's elements where ``mask`` holds, and where it does not; without a copy when it holds
    everywhere (a block without a malformed line)."""
    if not len(mask) or pc.all(mask).as_py():
        return [(array, array.slice(0, 0)) for array in arrays]
    rest = pc.invert(mask)
    return [(array.filter(mask), array.filter(rest)) for array in arrays]
