"""Before the first champion: what the scheduled jobs that read the champion do on a new workspace.

A first deploy unpauses ``batch_inference`` (02:00) and ``model_monitoring`` (06:00) before
anything has been trained and promoted. Until a first champion exists they end successfully,
saying they wait for it (no failure e-mail every night). A champion that disappears after
one existed is a failure naming the cause: the audit log shows a promotion or roll-back, or
a version carries the status of a champion or a retired one.
"""

from __future__ import annotations

from collections.abc import Iterable

from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import audit
from healthcare_mlops.modeling.artifacts import CHAMPION

# Statuses only a version that was champion carries (governance/service.py writes them).
WAS_CHAMPION_STATUSES = (CHAMPION, "retired")
CHAMPION_ACTIONS = (audit.PROMOTED, audit.ROLLED_BACK)


class ChampionMissing(UserError):
    """The champion alias is gone although a champion existed before."""


def past_champions(audited: Iterable[tuple[str, str]], statuses: Iterable[tuple[str, str | None]]) -> list[str]:
    """Versions that were champion: audited (version, action) promotions or roll-backs, and versions
    whose (version, status) says champion or retired. Sorted, without repeats."""
    versions = {str(v) for v, action in audited if action in CHAMPION_ACTIONS and str(v)}
    versions |= {str(v) for v, status in statuses if status in WAS_CHAMPION_STATUSES}
    return sorted(versions, key=lambda v: (len(v), v))


def waiting_for_first_champion(log: audit.AuditLog, registry, job: str) -> str | None:
    """None when the model has a champion; a message when none has ever existed (``job`` waits).

    The champion is the audited one (``governance/champion.py``), as every reader sees it.
    Raises ``ChampionMissing`` when one existed and is gone: the audit names a champion whose
    alias was removed outside governance (no move in progress), or versions carry a champion's
    status while the audit names none. ``registry``: the model's registry adapter
    (runtime/model_registry.py)."""
    from healthcare_mlops.governance.champion import audited_champion, move_in_progress
    from healthcare_mlops.governance.service import STATUS_TAG

    name = registry.model_name
    audited = audited_champion(log)
    if audited is not None:
        if registry.aliased(CHAMPION) is None and move_in_progress(registry) is None:
            raise ChampionMissing(f"{name} has no '{CHAMPION}' alias, but the audit log's champion is version "
                                  f"{audited}: the alias was removed outside governance. Restore it with "
                                  f"`healthcare-mlops governance rollback --to-version {audited}` (or a "
                                  "model_governance run)")
        return None
    history = log.history()
    audited_moves = zip(history["version"], history["action"]) if not history.empty else []
    versions = registry.versions()
    before = past_champions(audited_moves, [(v.version, (v.tags or {}).get(STATUS_TAG)) for v in versions])
    if before:
        raise ChampionMissing(f"{name} has no audited champion, but version(s) {', '.join(before)} were champion "
                              "before: a promotion was undone or its audit rows are missing. Restore it with "
                              "`healthcare-mlops governance rollback --to-version N` (or a model_governance run)")
    return (f"{job}: waiting for the first champion: {name} has no champion yet"
            f"{' (' + str(len(versions)) + ' version(s) registered, none promoted)' if versions else ''}; "
            "nothing to do until ml_training_pipeline promotes one (or an approver approves a challenger)")
