"""The registered model as the console shows it: champion, challenger, every version's status, model cards.

Plain functions of an ``MlflowClient`` (the caching layer, app/data.py, holds the client
and caches the results).
"""

from __future__ import annotations

import pandas as pd

from healthcare_mlops.governance import audit, decisions
from healthcare_mlops.governance.lineage import REPRODUCED_AT_TAG, RESULT_TAG
from healthcare_mlops.modeling.artifacts import CHALLENGER, CHAMPION, IMPORTANCE_METRIC_PREFIX, PROMOTION_PENDING
from healthcare_mlops.runtime.mlflow_setup import find_in_registry


def no_model(name: str) -> dict:
    """What ``read_registry`` returns before any version is registered."""
    return {"model_name": name, "exists": False, CHAMPION: None, CHALLENGER: None, "versions": pd.DataFrame()}


def read_registry(client, name: str, champion: str | None) -> dict:
    """Champion and challenger versions and one row per version (aliases, governance status, registered).

    ``champion`` is the audited champion (``governance/champion.py``): it stands in for the
    registry's ``champion`` alias, which a half-done move may have left elsewhere."""
    model = find_in_registry(client.get_registered_model, name)
    if model is None:
        return no_model(name)
    aliases = {alias: version for alias, version in dict(getattr(model, "aliases", None) or {}).items()
               if alias != CHAMPION}
    if champion is not None:
        aliases[CHAMPION] = champion
    by_version: dict = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    rows = [{
        "version": int(v.version),
        "aliases": ", ".join(sorted(by_version.get(str(v.version), []))),
        "status": (v.tags or {}).get("governance_status", ""),
        # the last `governance reproduce` of the version (governance/reproduce.py tags it)
        "reproduced_at": (v.tags or {}).get(REPRODUCED_AT_TAG, ""),
        "reproduction": (v.tags or {}).get(RESULT_TAG, ""),
        "registered": pd.Timestamp(int(v.creation_timestamp), unit="ms", tz="UTC") if v.creation_timestamp else pd.NaT,
        "run_id": v.run_id,
    } for v in client.search_model_versions(f"name = '{name}'")]
    frame = pd.DataFrame(rows).sort_values("version", ascending=False).reset_index(drop=True) if rows \
        else pd.DataFrame()
    return {"model_name": name, "exists": True,
            CHAMPION: int(aliases[CHAMPION]) if CHAMPION in aliases else None,
            CHALLENGER: int(aliases[CHALLENGER]) if CHALLENGER in aliases else None,
            "versions": frame}


def read_model_card(client, name: str, version) -> str:
    """The model card (Markdown) stored in the version's description ('' when there is none)."""
    found = find_in_registry(client.get_model_version, name, str(version))
    return (found.description or "") if found is not None else ""


def read_importance(client, registry: dict) -> pd.DataFrame:
    """``input, version, usd``: the champion's and the challenger's global importance (mean |contribution|
    per input over the training frame, logged by training as ``importance_usd_<input>`` run metrics)."""
    versions = registry["versions"]
    rows = []
    for role in (CHAMPION, CHALLENGER):
        version = registry[role]
        if version is None or versions.empty or (role == CHALLENGER and version == registry[CHAMPION]):
            continue
        run_id = versions.loc[versions["version"] == version, "run_id"]
        metrics = client.get_run(run_id.iloc[0]).data.metrics if not run_id.empty else {}
        rows += [{"input": key[len(IMPORTANCE_METRIC_PREFIX):], "version": f"{role} (version {version})", "usd": value}
                 for key, value in metrics.items() if key.startswith(IMPORTANCE_METRIC_PREFIX)]
    return pd.DataFrame(rows, columns=["input", "version", "usd"])


def version_status(versions: pd.DataFrame, audit_log: pd.DataFrame, version) -> str:
    """The version's status: an approval recorded in the audit log (the ``audit_log`` query) that no
    model_governance run has applied yet reads as ``PROMOTION_PENDING``, a rejection as ``rejected`` (the
    decision stands at once: no job is needed to stop a rejected version); else the registry's status tag."""
    history = audit_log[audit_log["version"].astype(str) == str(version)] if not audit_log.empty else audit_log
    history = history.rename(columns={"actor_role": "role"}).sort_values(["event_time", "event_id"]) \
        if not history.empty else history
    if not history.empty and decisions.approved_not_promoted(history):
        return PROMOTION_PENDING
    latest = decisions.latest_decision(history) if not history.empty else None
    if latest is not None and latest["action"] == audit.REJECTED:      # recorded, applied or not yet
        return audit.REJECTED        # the same word as the status tag governance puts on it
    status = versions.loc[versions["version"] == version, "status"] if not versions.empty else versions
    return str(status.iloc[0]) if len(status) else ""
