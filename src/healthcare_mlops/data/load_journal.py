"""The member-load journal (table ``member_loads``): what each load meant to write, and whether it did.

A load writes three tables (the quarantine, silver_patients, dim_patients) in several Delta
commits; Delta has no transaction across tables. So a load first appends a ``started``
row holding the versions of silver, the quarantine and dim_patients before it, and who
started it, and appends ``committed`` after its last write. A ``started`` row without an
ending is a load that died half-way: the next load rolls it back (its partitions and
dim_patients as they were at those versions) and appends ``rolled_back`` before doing
anything else.

The journal also holds each source's identity for a date: the fingerprint of what was
loaded (the CSV's content hash, or the generator's parameters), so that loading other
content under the same source and date is refused unless it is an explicit replace.
Append-only: a load's events are rows, never updates. ``catalog`` is a table catalog
(runtime/catalog_base.py), handed in by the task that runs the load.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import pyarrow.compute as pc

from healthcare_mlops.tables import MEMBER_LOADS, MEMBER_LOADS_SPEC

STARTED, COMMITTED, ROLLED_BACK = "started", "committed", "rolled_back"

SCHEMA = MEMBER_LOADS_SPEC.arrow_schema()


@dataclass(frozen=True)
class Load:
    """One load as the journal knows it: which partitions, which content, and the versions before."""

    load_id: str
    source: str
    stage: str
    as_of_date: dt.date
    fingerprint: str
    silver_version: int | None = None
    quarantine_version: int | None = None
    dim_version: int | None = None
    loaded_by: str | None = None
    role: str | None = None

    @staticmethod
    def new(source: str, stage: str, as_of: dt.date, fingerprint: str, loaded_by: str, role: str) -> Load:
        return Load(uuid.uuid4().hex, source, stage, as_of, fingerprint, loaded_by=loaded_by, role=role)

    def record(self, catalog, event: str, counts: tuple[int, int, int] | None = None) -> None:
        """Append this load's ``event`` (with rows in, loaded, quarantined once it committed)."""
        rows_in, loaded, quarantined = counts or (None, None, None)
        catalog.append_rows(MEMBER_LOADS, [{
            "load_id": self.load_id, "event": event, "source": self.source, "stage": self.stage,
            "as_of_date": self.as_of_date, "fingerprint": self.fingerprint,
            "silver_version": self.silver_version, "quarantine_version": self.quarantine_version,
            "rows_in": rows_in, "rows_loaded": loaded, "rows_quarantined": quarantined,
            "recorded_at": dt.datetime.now(dt.timezone.utc), "dim_version": self.dim_version,
            "loaded_by": self.loaded_by, "role": self.role}], SCHEMA)


def unfinished(catalog) -> list[Load]:
    """Loads that started and neither committed nor were rolled back (their process died)."""
    if not catalog.exists(MEMBER_LOADS):
        return []
    events = catalog.read_arrow(MEMBER_LOADS)
    ended = set(events.filter(pc.field("event") != STARTED).column("load_id").to_pylist())
    started = events.filter(pc.field("event") == STARTED).to_pylist()
    return [_load(row) for row in started if row["load_id"] not in ended]


def loaded_fingerprint(catalog, source: str, as_of: dt.date) -> str | None:
    """The fingerprint of the last committed load of ``source`` for ``as_of`` (None: never loaded)."""
    if not catalog.exists(MEMBER_LOADS):
        return None
    rows = catalog.read_arrow(MEMBER_LOADS, [("event", "=", COMMITTED), ("source", "=", source),
                                             ("as_of_date", "=", as_of)]).to_pylist()
    return max(rows, key=lambda row: row["recorded_at"])["fingerprint"] if rows else None


def loaded_sources(catalog, fingerprint: str, as_of: dt.date) -> list[str]:
    """The sources whose last committed load for ``as_of`` had ``fingerprint`` (the same content)."""
    if not catalog.exists(MEMBER_LOADS):
        return []
    rows = catalog.read_arrow(MEMBER_LOADS, [("event", "=", COMMITTED), ("as_of_date", "=", as_of)],
                              ["source", "fingerprint", "recorded_at"]).to_pylist()
    last = {row["source"]: row["fingerprint"] for row in sorted(rows, key=lambda row: row["recorded_at"])}
    return sorted(source for source, loaded in last.items() if loaded == fingerprint)


def _load(row: dict) -> Load:
    return Load(row["load_id"], row["source"], row["stage"], row["as_of_date"], row["fingerprint"],
                row["silver_version"], row["quarantine_version"], row.get("dim_version"), row.get("loaded_by"),
                row.get("role"))
