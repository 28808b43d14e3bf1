"""The Governance page's reproduction section: each version's last reproduction, and Reproduce.

The result is the version's own tags (``governance reproduce`` and the
``model_reproduction`` job write them). Reproduce starts the ``model_reproduction`` job
through the target's job launcher: on Databricks a job run (rebuilding a model retrains
it and reads tables by time travel, which needs Spark), locally the bundle's runner in the
background, the same way.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import actions, auth, ui
from healthcare_mlops.bundle.launchers import LaunchedRun
from healthcare_mlops.identity import Identity

JOB = "model_reproduction"


def reproduction_table(versions: pd.DataFrame) -> pd.DataFrame:
    """Version, when it was last reproduced and the result ("not yet" when never)."""
    frame = versions[["version", "reproduced_at", "reproduction"]].copy()
    frame["reproduction"] = frame["reproduction"].where(frame["reproduction"] != "", "not yet")
    # the tag holds an ISO time; shown in the console's one timestamp format
    frame["reproduced_at"] = [ui.timestamp(t, zone=False) if t else "" for t in frame["reproduced_at"]]
    return frame


def start_reproduction(identity: Identity, version) -> LaunchedRun:
    """Start the ``model_reproduction`` job for ``version`` (operator or higher), audited as a job start."""
    identity.require("reproduce")
    return actions.run_job_now(identity, JOB, {"model_version": str(version)})


def render(registry: dict, identity: Identity) -> None:
    """The section: the table, and for an operator the version picker and Reproduce."""
    st.subheader("Reproduction")
    versions = registry["versions"]
    ui.table(reproduction_table(versions), key="gov_reproduction_table")
    st.caption("Reproduce rebuilds a version from its lineage (the tables at their recorded Delta versions, "
               "the recorded parameters) and compares the training data's hash, the predictions, the metrics, "
               "every governance verdict and the package versions with the registered model.")
    if not auth.can(identity, "reproduce"):
        st.caption(f"Reproduce needs the operator role; you are {identity.role}.")
        return
    choices = list(versions["version"])
    champion = registry.get("champion")
    version = st.selectbox("Version to reproduce", choices,
                           index=choices.index(champion) if champion in choices else 0, key="gov_reproduce_version")
    if st.button("Reproduce", key="gov_reproduce"):
        with ui.guard():
            run = start_reproduction(identity, version)
            st.success(f"Started {JOB} for version {version} (run {run.run_id or 'pending'}); the result appears "
                       "here when it finishes (see Jobs).")
