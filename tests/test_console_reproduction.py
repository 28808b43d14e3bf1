"""The Governance page's reproduction section: last result per version, Reproduce starts the job.

Streamlit's AppTest on a copy of the session pipeline's lakehouse; the job runs through the
local runner in the background exactly as Run now starts it, and really reproduces the champion.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable

REPO = Path(__file__).resolve().parents[1]

from app import actions
from app.reproduction import start_reproduction
from healthcare_mlops import tables as T
from healthcare_mlops.errors import UserError
from healthcare_mlops.identity import ANALYST, OPERATOR, Identity
from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
from healthcare_mlops.settings import resolve_settings

MAIN = str(REPO / "app" / "main.py")
USER = "ops@example.com"


def _governance_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    at.switch_page("../pages/governance.py").run()
    assert not at.exception, at.exception[0].value
    at.radio(key="gov_view").set_value("Reproduction").run()        # a view the page draws when asked for
    assert not at.exception, at.exception[0].value
    return at


def _shown(at) -> dict:
    frame = next(d.value for d in at.dataframe if list(d.value.columns) == ["version", "reproduced_at", "reproduction"])
    return dict(zip(frame["version"].astype(str), frame["reproduction"]))


def test_an_operator_starts_a_reproduction_and_the_page_shows_its_result(copy_home, monkeypatch):
    monkeypatch.delenv("HEALTHCARE_MLOPS_TARGET", raising=False)
    monkeypatch.setenv("HEALTHCARE_MLOPS_USER", USER)
    monkeypatch.setenv("HEALTHCARE_MLOPS_ROLE", OPERATOR)
    at = _governance_page()
    assert _shown(at) == {"1": "not yet"}
    at.selectbox(key="gov_reproduce_version").select(1).run()
    at.button(key="gov_reproduce").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    started = actions.started_runs()[0]
    assert started.job_key == "model_reproduction"
    started.process.wait(timeout=900)
    assert started.process.returncode == 0, started.log_path.read_text()[-3000:]
    settings = resolve_settings("local", copy_home)
    tags = configure_mlflow(settings).get_model_version(settings.model_name, "1").tags
    assert tags["reproduction_result"] == "identical" and tags["reproduced_by"] == "job:local"
    runs = DeltaTable(settings.table_location(T.JOB_RUNS)).to_pandas()
    assert list(runs.loc[runs["parent_run_id"].isna(), "job_key"]) == ["model_reproduction"]
    log = DeltaTable(settings.table_location(T.MODEL_GOVERNANCE_LOG)).to_pandas()
    assert list(log.loc[log["action"] == "ran job", "actor"]) == [USER]
    assert list(log.loc[log["action"] == "reproduced", "comment"]) == ["identical"]
    at.run()
    assert _shown(at) == {"1": "identical"}


def test_an_analyst_sees_the_results_but_cannot_reproduce(copy_home, monkeypatch):
    monkeypatch.delenv("HEALTHCARE_MLOPS_TARGET", raising=False)
    monkeypatch.setenv("HEALTHCARE_MLOPS_ROLE", ANALYST)
    at = _governance_page()
    assert "gov_reproduce" not in {b.key for b in at.button}
    assert any("Reproduce needs the operator role" in c.value for c in at.caption)
    with pytest.raises(UserError, match="reproduce needs the operator role"):
        start_reproduction(Identity(USER, ANALYST), 1)
