"""A registered version's complete lineage: what it was built from, recorded so it can be rebuilt.

Recorded by training on the run and on the model version as MLflow tags (one small value
each, under ``lineage.``): every table read with its Delta version and location (a
folder locally, the Unity Catalog name on Databricks), the code commit and whether the
tree was dirty, the installed versions of the packages that shape the model, the seed,
the split salt, every training parameter, and the hash of the training frame
(``modeling/frame_hash.py``). ``governance reproduce`` reads it back (``RecordedLineage``)
and the model card renders ``lineage_rows``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from healthcare_mlops.errors import UserError

PREFIX = "lineage."
TABLE_PREFIX = f"{PREFIX}table."
PACKAGE_PREFIX = f"{PREFIX}package."
PARAM_PREFIX = f"{PREFIX}param."
FRAME_HASH_TAG = f"{PREFIX}frame_hash"
COMMIT_TAG = f"{PREFIX}git_commit"
DIRTY_TAG = f"{PREFIX}git_dirty"
# The last reproduction's outcome on the version (governance/reproduce.py writes, the console reads).
REPRODUCED_AT_TAG, RESULT_TAG, BY_TAG = "reproduced_at", "reproduction_result", "reproduced_by"


@dataclass(frozen=True)
class RecordedLineage:
    """What a version records about how it was built."""

    tables: dict[str, dict]        # logical name -> {table, location, delta_version, as_of_date}
    packages: dict[str, str]
    params: dict[str, str]
    frame_hash: str
    git_commit: str | None
    git_dirty: bool | None

    @property
    def seed(self) -> int:
        return int(self.params["seed"])

    @property
    def split_salt(self) -> str:
        return self.params["split_salt"]


def lineage_tags(tables: dict[str, dict], packages: dict[str, str], params: dict, frame_hash: str,
                 git_commit: str | None, git_dirty: bool | None) -> dict[str, str]:
    """The lineage as MLflow tags: one short value per tag (workspace tag values are limited)."""
    tags = {FRAME_HASH_TAG: frame_hash, COMMIT_TAG: git_commit or "unknown",
            DIRTY_TAG: "unknown" if git_dirty is None else str(bool(git_dirty)).lower()}
    tags.update({f"{TABLE_PREFIX}{name}": json.dumps(entry, sort_keys=True) for name, entry in tables.items()})
    tags.update({f"{PACKAGE_PREFIX}{name}": version for name, version in packages.items()})
    tags.update({f"{PARAM_PREFIX}{name}": str(value) for name, value in params.items()})
    return tags


def _with_prefix(tags: dict, prefix: str) -> dict[str, str]:
    return {key[len(prefix):]: value for key, value in tags.items() if key.startswith(prefix)}


def recorded_lineage(tags: dict, version: str) -> RecordedLineage:
    """The lineage a version's tags record, or a UserError when the version has none."""
    if FRAME_HASH_TAG not in tags:
        raise UserError(f"version {version} records no lineage (it was registered before lineage was "
                        "recorded): it cannot be reproduced; train a new version")
    dirty = tags.get(DIRTY_TAG, "unknown")
    return RecordedLineage(
        tables={name: json.loads(value) for name, value in _with_prefix(tags, TABLE_PREFIX).items()},
        packages=_with_prefix(tags, PACKAGE_PREFIX), params=_with_prefix(tags, PARAM_PREFIX),
        frame_hash=tags[FRAME_HASH_TAG],
        git_commit=None if tags.get(COMMIT_TAG) in (None, "unknown") else tags[COMMIT_TAG],
        git_dirty=None if dirty == "unknown" else dirty == "true")


def lineage_rows(tags: dict) -> list[dict]:
    """The lineage as (item, value) rows for the model card; empty when the version records none."""
    if FRAME_HASH_TAG not in tags:
        return []
    lineage = recorded_lineage(tags, "")
    dirty = {True: " (uncommitted changes)", False: " (clean tree)", None: ""}[lineage.git_dirty]
    rows = [{"item": f"table {name}", "value": f"{entry.get('table')} at Delta version {entry.get('delta_version')}"
             f" (as of {entry.get('as_of_date')}; {entry.get('location')})"}
            for name, entry in sorted(lineage.tables.items())]
    rows.append({"item": "training frame hash", "value": lineage.frame_hash})
    rows.append({"item": "code commit", "value": f"{lineage.git_commit or 'unknown'}{dirty}"})
    rows += [{"item": f"package {name}", "value": version} for name, version in sorted(lineage.packages.items())]
    rows += [{"item": f"parameter {name}", "value": value} for name, value in sorted(lineage.params.items())]
    return rows
