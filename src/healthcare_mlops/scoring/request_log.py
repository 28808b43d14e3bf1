"""The local scoring server's request log: each request as a row of ``serving_payload``, written in batches.

The row has AI Gateway's inference-table columns (``tables.SERVING_PAYLOAD_SPEC``), so
monitoring reads local and Databricks traffic alike. What a row may hold is decided here:
an accepted request keeps only its model inputs (the checked request's records, ``params``
dropped); a refused one keeps no body at all, only the error it was answered with (the
refusal names a prohibited field, never its value).

Writing is off the request's path: ``RequestLog.add`` appends to a buffer under a lock;
a background thread hands full batches (or whatever waited ``flush_seconds``) to ``write``,
the adapter that commits them (``runtime/request_log_table.py``). A failed write is
printed to the server's log with its rows' count and the rows are kept for the next try,
so a slow or broken table never delays or fails an answer.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from healthcare_mlops.tables import SERVING_PAYLOAD_SPEC

BATCH_ROWS = 200
FLUSH_SECONDS = 2.0
MAX_BUFFERED_ROWS = 100_000      # beyond this (the table unwritable for long) the oldest rows are dropped


@dataclass(frozen=True)
class Served:
    """What the server knows of the version that answered: the model URI's name and version."""

    entity: str
    version: str


def accepted_request(parsed: dict, inputs: tuple[str, ...]) -> str:
    """The JSON kept of an accepted request: its records with the model's inputs only."""
    if "dataframe_records" in parsed:
        records = [{k: v for k, v in row.items() if k in inputs} for row in parsed["dataframe_records"]]
    else:
        split = parsed["dataframe_split"]
        keep = [i for i, c in enumerate(split["columns"]) if c in inputs]
        records = [{split["columns"][i]: row[i] for i in keep} for row in split["data"]]
    return json.dumps({"dataframe_records": records}, separators=(",", ":"))


def payload_row(status: int, started: dt.datetime, duration_ms: float, request: str | None, response: bytes | str,
                served: Served) -> dict:
    """One ``serving_payload`` row (``request`` None for a refused request)."""
    text = response.decode(errors="replace") if isinstance(response, bytes) else response
    return {"request_date": started.date(), "databricks_request_id": uuid.uuid4().hex, "request_time": started,
            "status_code": int(status), "execution_duration_ms": int(round(duration_ms)), "request": request,
            "response": text, "served_entity_id": served.entity, "model_version": served.version}


class RequestLog:
    """Buffered rows, committed in batches by a background thread (see the module docstring)."""

    def __init__(self, write: Callable[[list[dict]], None], batch_rows: int = BATCH_ROWS,
                 flush_seconds: float = FLUSH_SECONDS):
        self._write = write
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def start(self) -> "RequestLog":
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()
        return self

    def add(self, row: dict) -> None:
        missing = set(SERVING_PAYLOAD_SPEC.names) - set(row)
        if missing:
            raise ValueError(f"a serving_payload row lacks {', '.join(sorted(missing))}")
        with self._lock:
            self._rows.append(row)
            if len(self._rows) > MAX_BUFFERED_ROWS:
                del self._rows[: len(self._rows) - MAX_BUFFERED_ROWS]
            full = len(self._rows) >= self._batch_rows
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Commit what is buffered now; the rows written (0 when the write failed: they stay buffered)."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            self._write(rows)
        except Exception as exc:        # the server goes on answering; the rows wait for the next flush
            print(f"request log: {len(rows)} rows not written yet ({type(exc).__name__}: {exc})", file=sys.stderr)
            with self._lock:
                self._rows[:0] = rows
            return 0
        self.written += len(rows)
        return len(rows)

    def close(self) -> None:
        """Stop the thread and commit the rest."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self.flush()
