"""Before the first champion the scheduled jobs wait successfully; a champion that disappeared fails them.

A first deploy unpauses batch_inference (02:00) and model_monitoring (06:00) before anything
is trained. Run through the bundle's own job definitions and the local runner (real MLflow
registry, real audit table): without any champion ever they end SUCCEEDED saying they wait;
once a champion existed (the audit shows a promotion, or a version carries a champion's
status) a missing alias is a failure that names the cause.
"""

from __future__ import annotations

import re

import pytest

from healthcare_mlops.runtime.model_registry import model_registry
from healthcare_mlops.composition import build_runtime
from healthcare_mlops.runtime.catalog import audit_log
from healthcare_mlops.emulator.runner import run_job
from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import audit
from healthcare_mlops.governance.first_champion import ChampionMissing, past_champions, waiting_for_first_champion
from healthcare_mlops.governance.service import STATUS_TAG
from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
from healthcare_mlops.tasks import batch_inference, model_monitoring

SCHEDULED = ("batch_inference", "model_monitoring")


def _register(settings, status: str | None = None) -> str:
    """One registered version (its source is never loaded here) with an optional governance status."""
    client = configure_mlflow(settings)
    if not client.search_registered_models(f"name = '{settings.model_name}'"):
        client.create_registered_model(settings.model_name)
    version = client.create_model_version(settings.model_name, str(settings.home / "no-model")).version
    if status:
        client.set_model_version_tag(settings.model_name, version, STATUS_TAG, status)
    return str(version)


def test_past_champions_come_from_promotions_roll_backs_and_statuses():
    audited = [("1", audit.VALIDATED), ("2", audit.PROMOTED), ("", audit.RAN_JOB), ("10", audit.ROLLED_BACK)]
    assert past_champions(audited, [("3", "validated"), ("4", "retired"), ("5", "champion"), ("6", None)]) == \
        ["2", "4", "5", "10"]
    assert past_champions([("1", audit.VALIDATED), ("1", audit.APPROVED)], [("1", "approved, promotion running")]) \
        == []


@pytest.mark.slow
def test_scheduled_jobs_on_a_new_workspace_wait_for_the_first_champion_and_succeed(settings):
    for job in SCHEDULED:
        run = run_job(job, home=settings.home, echo=False)
        assert run.succeeded, run.error                       # no failure, so no failure e-mail
        assert f"{job}: waiting for the first champion" in run.task(job).log_path.read_text()
    _register(settings, "validated")                          # a challenger trained, not promoted yet
    waiting = batch_inference.run(build_runtime(settings))["waiting"]
    assert "1 version(s) registered, none promoted" in waiting
    assert model_monitoring.run(build_runtime(settings))["waiting"].startswith(
        "model_monitoring: waiting for the first champion")
    # validation scoring (the training pipeline's step) never waits: it fails on what is missing
    with pytest.raises(UserError, match="ml_insurance_features does not exist"):
        batch_inference.run(build_runtime(settings), mode="validation")


@pytest.mark.slow
@pytest.mark.parametrize("evidence", ["audit", "status"])
def test_a_champion_that_disappeared_fails_the_scheduled_jobs_naming_the_cause(settings, evidence):
    version = _register(settings, "retired" if evidence == "status" else "validated")
    if evidence == "audit":
        audit_log(settings).record(audit.audit_event(settings.model_name, version, audit.PROMOTED, "job:local",
                                                     "system", "auto"))
    cause = (f"no 'champion' alias, but the audit log's champion is version {version}" if evidence == "audit"
             else f"no audited champion, but version(s) {version} were champion before")
    with pytest.raises(ChampionMissing, match=re.escape(cause)):
        waiting_for_first_champion(audit_log(settings), model_registry(settings), "batch_inference")
    for job in SCHEDULED:
        run = run_job(job, home=settings.home, echo=False)
        assert not run.succeeded
        assert cause in run.error, run.error
