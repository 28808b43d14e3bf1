"""A console approval on Databricks records the decision and leaves the promotion to model_governance.

Moving a Unity Catalog model's alias needs its owner; the app's service principal is not.
So on Databricks the console records the approval (audit row, version tags, status
"approved, promotion running") and starts the ``model_governance`` job, which runs as the
owner and promotes. The registry and the job below are real (local MLflow, the real task);
only the workspace's ``jobs.run_now`` is faked, and the request it gets is checked.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from app import actions, data
from healthcare_mlops.data.population import Shape
from healthcare_mlops.governance import audit
from healthcare_mlops.governance.service import (CHALLENGER, CHAMPION, PROMOTION_PENDING, STATUS_TAG,
                                                 Governance)
from healthcare_mlops.identity import APPROVER, Identity
from healthcare_mlops.settings import GOVERNANCE_JOB_ID_ENV, resolve_settings

OWNER = Identity("owner@example.com", APPROVER)


@pytest.fixture(scope="module")
def registry(spark, tmp_path_factory):
    """A local home whose registry holds one trained version, the challenger, waiting (manual mode)."""
    from healthcare_mlops.features.definitions import AGE_BANDS, band
    from healthcare_mlops.modeling.training import train
    from healthcare_mlops.spark.generator import generate_load
    from healthcare_mlops.tasks.model_training import log_and_register

    home = tmp_path_factory.mktemp("approval") / "lakehouse"
    settings = resolve_settings("local", home)
    frame = generate_load(spark, 3, dt.date(2026, 1, 1), 2000, Shape()).toPandas()
    frame = frame[frame["annual_charges"].notna()].reset_index(drop=True)
    frame["age_band"] = band(frame["age"], AGE_BANDS)
    log_and_register(settings, train(frame, seed=1, candidates=("hist_gradient_boosting_poisson",)),
                     {"table": "features", "as_of_date": "2026-01-01", "delta_version": 1}, commit="abc123")
    governance = Governance(settings, OWNER)
    governance.client.set_registered_model_alias(governance.model_name, CHALLENGER, "1")
    return home


@pytest.mark.slow
def test_a_recorded_approval_waits_for_the_job_which_promotes_it(registry, private_home):
    from healthcare_mlops.tasks import model_governance

    home = private_home(registry)
    manual = resolve_settings("local", home, {"approval_mode": "manual"})
    assert model_governance.run(manual) == model_governance.WAITING
    governance = Governance(manual, OWNER)

    approved = governance.approve("1", "checked the fairness table", override_reason="test data is small",
                                  promote=False)
    assert approved == "1"
    assert governance.alias(CHAMPION) is None                 # the app cannot move it
    version = governance.client.get_model_version(governance.model_name, "1")
    assert version.tags[STATUS_TAG] == PROMOTION_PENDING
    assert '"by": "owner@example.com"' in version.tags["approval"]
    assert list(audit.history(manual, "1")["action"])[-1] in (audit.APPROVED, audit.OVERRIDDEN)

    assert model_governance.run(manual) == model_governance.PROMOTED   # as the owner
    assert governance.alias(CHAMPION) == "1"
    assert governance.client.get_model_version(governance.model_name, "1").tags[STATUS_TAG] == CHAMPION
    assert list(audit.history(manual, "1")["action"])[-1] == audit.PROMOTED


class FakeJobs:
    """``WorkspaceClient().jobs`` at the boundary: records ``run_now`` requests."""

    def __init__(self):
        self.requests: list = []

    def run_now(self, job_id, job_parameters=None):
        self.requests.append({"job_id": job_id, "job_parameters": job_parameters})
        return type("Wait", (), {"run_id": 4242})()


def test_the_console_starts_model_governance_by_the_id_app_yaml_maps(monkeypatch):
    jobs = FakeJobs()
    monkeypatch.setenv(GOVERNANCE_JOB_ID_ENV, "917")
    monkeypatch.setattr(data, "workspace_client", lambda: type("Client", (), {"jobs": jobs})())
    from healthcare_mlops.bundle.launchers import job_id_env

    started = actions.start_promotion(OWNER, resolve_settings("prod"))
    assert jobs.requests == [{"job_id": 917, "job_parameters": None}]
    assert (started.job_key, started.run_id, started.trigger) == ("model_governance", "4242", f"console:{OWNER.user}")
    assert GOVERNANCE_JOB_ID_ENV == job_id_env(actions.ENDPOINT_JOB)
    assert f"name: {GOVERNANCE_JOB_ID_ENV}" in (REPO / "app.yaml").read_text()
