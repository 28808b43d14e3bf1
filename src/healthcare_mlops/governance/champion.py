"""Which version is the champion, for every reader: the last one the audit log shows becoming it.

A promotion or rollback moves the ``champion`` alias before it writes its audit row
(``governance/service.py``). A process killed in between leaves the alias on a version the
audit never names, until a governance command that changes the registry, ``governance repair``
or the ``model_governance`` job repairs it (``Governance.recover``; never ``status``). Readers (batch scoring,
real-time serving, monitoring, the console) therefore never read the raw alias: the
champion is the version of the model's latest ``promoted`` or ``rolled back`` audit event.
That is the old champion until the move's audit row exists and the new one from then on,
which is also what the repair leaves (it completes a move whose row exists and undoes one
whose row does not). Readers do not repair themselves: a repair from a reader while a
promotion is still running would undo that live promotion under it.

``misscored_days`` finds the scoring dates whose predictions came from another version than
the audited champion at the time they were written (say, by an older release that read the
alias during an interrupted move), so the repair can name them for rescoring.
"""

from __future__ import annotations

import json

import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import audit
from healthcare_mlops.modeling.artifacts import CHAMPION
from healthcare_mlops.tables import ML_PATIENT_PREDICTIONS

INTENT_TAG = "promotion_in_progress"     # the registered-model tag of a move in progress
CHAMPION_ACTIONS = (audit.PROMOTED, audit.ROLLED_BACK)


def champion_timeline(events: pd.DataFrame) -> pd.DataFrame:
    """``event_time, version`` of every audited change of champion, oldest first."""
    moves = events[events["action"].isin(CHAMPION_ACTIONS)]
    return moves[["event_time", "version"]].reset_index(drop=True)


def champion_at(timeline: pd.DataFrame, when) -> str | None:
    """The audited champion at ``when`` (None before the first promotion)."""
    before = timeline[timeline["event_time"] <= pd.Timestamp(when)]
    return None if before.empty else str(before.iloc[-1]["version"])


def audited_champion(log: audit.AuditLog) -> str | None:
    """The champion as the audit log records it (None when no version was ever promoted)."""
    timeline = champion_timeline(log.history())
    return None if timeline.empty else str(timeline.iloc[-1]["version"])


def move_in_progress(registry) -> dict | None:
    """The intent of a promotion or rollback not finished (or not yet repaired), or None.

    ``registry``: the model's registry adapter (runtime/model_registry.py)."""
    intent = (registry.model_tags() or {}).get(INTENT_TAG)
    return None if intent is None else json.loads(intent)


def resolve_champion(log: audit.AuditLog, registry):
    """The audited champion's registered ``ModelVersion``, or a UserError saying how to get one.

    Says so when the alias points elsewhere (a move half done, or the alias set outside
    governance): the reader goes on with the audited version."""
    name = registry.model_name
    version = audited_champion(log)
    if version is None:
        raise UserError(f"{name} has no champion: run the training pipeline first "
                        "(healthcare-mlops jobs run ml_training_pipeline); no version was ever promoted in the "
                        "governance audit log")
    found = registry.version(version)
    if found is None:
        raise UserError(f"{name} version {version}, the audited champion, is not in the registry")
    alias = registry.aliased(CHAMPION)
    if alias is None or str(alias.version) != version:
        intent = move_in_progress(registry)
        why = (f"a move to version {intent['version']} is in progress or was interrupted" if intent
               else "the alias was set outside governance")
        print(f"the '{CHAMPION}' alias of {name} is on version {alias.version if alias else '(none)'} but the "
              f"audit log's champion is version {version} ({why}): using version {version}")
    return found


def misscored_days(log: audit.AuditLog) -> list[dict]:
    """Scoring dates whose production predictions came from a version other than the audited
    champion when they were written: ``scoring_date, model_version, champion, scored_at``
    (the predictions are read from the audit log's catalog, the target's)."""
    catalog = log.catalog
    if not catalog.exists(ML_PATIENT_PREDICTIONS):
        return []
    scored = catalog.read_pandas(ML_PATIENT_PREDICTIONS, columns=["scoring_date", "model_version", "scored_at"])
    runs = scored.groupby(["scoring_date", "model_version"], as_index=False)["scored_at"].max()
    timeline = champion_timeline(log.history())
    wrong = []
    for row in runs.itertuples(index=False):
        champion = champion_at(timeline, row.scored_at)
        if champion != str(row.model_version):
            wrong.append({"scoring_date": str(row.scoring_date), "model_version": str(row.model_version),
                          "champion": champion, "scored_at": str(row.scored_at)})
    return sorted(wrong, key=lambda day: day["scoring_date"])
