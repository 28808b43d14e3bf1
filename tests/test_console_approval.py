"""A console decision is recorded, and model_governance applies it as the model's owner.

The console writes the decision's audit row and starts ``model_governance`` for the version;
it changes nothing in the registry (on Databricks the app's service principal may not tag a
version, write a model card or move an alias). The job reads the decision back from the
audit log (only a row whose role may decide counts), validates exactly the version it is
given, and tags, re-renders the card and promotes. The registry, the audit table, the job and
the local runner below are real; nothing is faked.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from app import actions, data
from healthcare_mlops.composition import build_runtime
from healthcare_mlops.runtime.catalog import audit_log
from healthcare_mlops.data.population import Shape
from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import audit, decisions
from healthcare_mlops.governance.service import (CHALLENGER, CHAMPION, PROMOTION_PENDING, STATUS_TAG)
from healthcare_mlops.identity import APPROVER, OPERATOR, Identity, job_identity
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tasks import model_governance

from in_process_tasks import tasks_in_this_process

OWNER = Identity("owner@example.com", APPROVER)


@pytest.fixture(scope="module")
def registry(spark, tmp_path_factory):
    """A local home whose registry holds version 1 (trained) and version 2 (the same model registered
    again), version 2 the challenger, nothing promoted."""
    from healthcare_mlops.features.definitions import AGE_BANDS, band
    from healthcare_mlops.modeling.training import train
    from healthcare_mlops.spark.generator import generate_load
    from healthcare_mlops.tasks.model_training import log_and_register

    home = tmp_path_factory.mktemp("approval") / "lakehouse"
    settings = resolve_settings("local", home)
    frame = generate_load(spark, 3, dt.date(2026, 1, 1), 2000, Shape()).toPandas()
    frame = frame[frame["annual_charges"].notna()].reset_index(drop=True)
    frame["age_band"] = band(frame["age"], AGE_BANDS)
    log_and_register(build_runtime(settings), train(frame, seed=1, candidates=("hist_gradient_boosting_poisson",)),
                     {"table": "features", "as_of_date": "2026-01-01", "delta_version": 1}, commit="abc123")
    client = build_runtime(settings).mlflow_client
    first = client.get_model_version(settings.model_name, "1")
    tags = {k: v for k, v in first.tags.items() if k in ("training_data_version", "git_commit", "model_inputs",
                                                         "run_id")}
    client.create_model_version(settings.model_name, first.source, run_id=first.run_id, tags=tags)
    client.set_registered_model_alias(settings.model_name, CHALLENGER, "2")
    return home


def _audited(settings, version: str) -> list[tuple[str, str]]:
    return list(zip(audit_log(settings).history(version)["action"], audit_log(settings).history(version)["actor"]))


@pytest.mark.slow
def test_a_console_approval_is_recorded_and_the_started_run_applies_it(registry, private_home):
    home = private_home(registry)
    settings = resolve_settings("local", home)
    manual = resolve_settings("local", home, {"approval_mode": "manual"})
    assert model_governance.run(build_runtime(manual)) == model_governance.WAITING   # validates the challenger, v2
    governance = build_runtime(manual).governance(job_identity(manual.target))
    card_before = governance.registry.client.get_model_version(governance.model_name, "2").description

    with pytest.raises(UserError, match="has no recorded validation"):     # v1 was never validated
        actions.approve(OWNER, "1", "looks fine", settings=manual)
    with pytest.raises(UserError, match="approve needs a --comment"):
        actions.approve(OWNER, "2", "  ", settings=manual)
    with pytest.raises(UserError, match="approve needs the approver role"):
        actions.approve(Identity("ops@example.com", OPERATOR), "2", "looks fine", settings=manual)

    with pytest.raises(UserError, match="fails hard checks .*needs --override-reason"):   # small test data
        actions.approve(OWNER, "2", "checked the fairness table", settings=manual)
    assert _audited(manual, "2") == [(audit.VALIDATED, "job:local")]       # refused: nothing recorded
    started = actions.approve(OWNER, "2", "checked the fairness table", "test data is small", settings=manual)
    # What the console did: two audit rows, nothing in the registry.
    version = governance.registry.client.get_model_version(governance.model_name, "2")
    assert "approval" not in version.tags and version.tags[STATUS_TAG] != PROMOTION_PENDING
    assert version.description == card_before
    actions_by = _audited(manual, "2")
    assert actions_by[-1] == (audit.OVERRIDDEN, OWNER.user)
    [ran] = [row for _, row in audit_log(manual).history("").iterrows() if row["action"] == audit.RAN_JOB]
    assert (ran["actor"], ran["comment"]) == (OWNER.user, 'model_governance with {"model_version": "2"}')
    assert decisions.approved_not_promoted(audit_log(manual).history("2"))

    # The started run: the bundle's model_governance job through the local runner, in the background.
    assert (started.job_key, started.where, started.trigger) == ("model_governance", "local",
                                                                f"console:{OWNER.user}")
    assert started.process.wait(timeout=600) == 0, started.log_path.read_text()[-3000:]
    log = started.log_path.read_text()
    assert "version 2 (challenger)" in log and "recorded decision: overridden by owner@example.com" in log
    assert governance.alias(CHAMPION) == "2"
    version = governance.registry.client.get_model_version(governance.model_name, "2")
    assert version.tags[STATUS_TAG] == CHAMPION and '"by": "owner@example.com"' in version.tags["approval"]
    assert "checked the fairness table" in version.description             # the card, re-rendered by the job
    promoted = audit_log(settings).history("2").iloc[-1]
    assert (promoted["action"], promoted["actor"]) == (audit.PROMOTED, "job:local")
    assert promoted["comment"] == "overridden by owner@example.com: checked the fairness table"
    assert not decisions.approved_not_promoted(audit_log(manual).history("2"))


@pytest.mark.slow
def test_the_job_applies_only_decisions_whose_role_may_take_them(registry, private_home):
    """Attack: a row in the audit table that claims a decision its role may not take is ignored."""
    home = private_home(registry)
    manual = resolve_settings("local", home, {"approval_mode": "manual"})
    assert model_governance.run(build_runtime(manual)) == model_governance.WAITING
    checks = decisions.recorded_checks(audit_log(manual).history("2"))
    for role in (OPERATOR, "system", "admin"):
        forged = audit.audit_event(manual.model_name, "2", audit.OVERRIDDEN, "mallory@example.com", role, "manual",
                                   checks, "forged", "forged")
        audit_log(manual).record(forged)
        assert not decisions.trusted(forged)
    assert model_governance.run(build_runtime(manual), "2") == model_governance.WAITING
    governance = build_runtime(manual).governance(job_identity(manual.target))
    assert governance.alias(CHAMPION) is None
    assert "approval" not in governance.registry.client.get_model_version(governance.model_name, "2").tags

    actions.reject(OWNER, "2", "duplicate registration", settings=manual).process.wait(timeout=600)
    assert governance.registry.client.get_model_version(governance.model_name, "2").tags[STATUS_TAG] == "rejected"
    assert model_governance.run(build_runtime(manual), "2") == model_governance.REJECTED  # a success: champion stays
    assert governance.alias(CHAMPION) is None


@pytest.mark.slow
def test_model_governance_governs_exactly_the_version_it_is_given(registry, private_home, monkeypatch):
    """Issue 24 item 6: ``--param model_version=1`` validated version 2 (the challenger) and reported success."""
    from healthcare_mlops.emulator.runner import run_job

    home = private_home(registry)
    settings = resolve_settings("local", home)
    for refused, message in (("9", "has no version 9"), ("1; drop", "must be a version number"),
                             ("-1", "must be a version number")):
        with pytest.raises(UserError, match=message):
            model_governance.run(build_runtime(settings), refused)
    assert audit_log(settings).history().empty                                   # a refused parameter writes nothing

    with pytest.raises(model_governance.GovernanceFailed, match="version 1 is not promoted"):   # auto mode
        model_governance.run(build_runtime(settings), "1")
    assert [a for a, _ in _audited(settings, "1")] == [audit.VALIDATED]
    assert audit_log(settings).history("2").empty                               # the challenger was not touched

    # Through the bundle's job definition and the runner, as `healthcare-mlops jobs run` does; the subject is
    # the parameter's way to the job file, not its process: the job file runs in this process.
    tasks_in_this_process(monkeypatch)
    missing = run_job("model_governance", {"model_version": "7"}, home=home, echo=False)
    assert not missing.succeeded and "has no version 7" in missing.error
    governed = run_job("model_governance", {"model_version": "2"}, home=home, echo=False)
    assert not governed.succeeded and "version 2 is not promoted" in governed.error
    assert [a for a, _ in _audited(settings, "2")] == [audit.VALIDATED]
    build_runtime(settings).governance(OWNER).approve("2", "small test data", override_reason="test data is small")
    older = run_job("model_governance", {"model_version": "1"}, home=home, echo=False)
    assert not older.succeeded and "older than the champion (version 2)" in older.error
    assert build_runtime(settings).governance(job_identity(settings.target)).alias(CHAMPION) == "2"
    assert [a for a, _ in _audited(settings, "1")] == [audit.VALIDATED]


def test_decisions_count_only_when_the_recorded_role_may_take_them():
    def row(action, role):
        return {"action": action, "actor": "someone@example.com", "role": role}

    assert decisions.trusted(row(audit.APPROVED, APPROVER)) and decisions.trusted(row(audit.REJECTED, APPROVER))
    assert decisions.trusted(row(audit.PROMOTED, "system"))
    assert not decisions.trusted(row(audit.APPROVED, OPERATOR))
    assert not decisions.trusted(row(audit.OVERRIDDEN, "system"))          # a job never approves
    assert not decisions.trusted(row(audit.VALIDATED, APPROVER))           # not a decision
    assert not decisions.trusted(row(audit.APPROVED, "APPROVER"))          # roles are exact


def test_the_console_starts_model_governance_for_the_version(monkeypatch, tmp_path):
    """The launcher gets the job and ``model_version``; a failing start leaves the recorded decision."""
    settings = resolve_settings("local", tmp_path / "lakehouse")
    calls = []

    class Launcher:
        def run_now(self, job, params=None, trigger="manual", **_):
            calls.append((job, params, trigger))
            raise UserError("no deployed job id for 'model_governance'")

    monkeypatch.setattr(actions, "_launcher", lambda settings: Launcher())
    checks = [{"name": "r2", "value": 0.8, "threshold": ">= 0.7", "verdict": "pass", "hard": True}]
    audit_log(settings).record(audit.audit_event(settings.model_name, "3", audit.VALIDATED, "job:local", "system",
                                             "auto", checks, hard_checks_passed=True))
    with pytest.raises(UserError, match="no deployed job id"):
        actions.approve(OWNER, 3, "ship it", settings=settings)
    assert calls == [("model_governance", {"model_version": "3"}, f"console:{OWNER.user}")]
    assert decisions.approved_not_promoted(audit_log(settings).history("3"))    # the next run applies it
    data.clear_caches()


@pytest.mark.slow
def test_a_rejected_challenger_is_no_challenger_in_status_and_reads_rejected_in_the_console(
        registry, private_home, monkeypatch):
    """Issue 29 item 4: after a reject, ``governance status`` lists no challenger (it names the rejected
    version instead), and the console reads the version's status as rejected at once (before the job
    applies it)."""
    from typer.testing import CliRunner

    from app.registry import version_status
    from healthcare_mlops.cli.main import app

    home = private_home(registry)
    manual = resolve_settings("local", home, {"approval_mode": "manual"})
    assert model_governance.run(build_runtime(manual)) == model_governance.WAITING   # validates the challenger, v2
    cli = CliRunner()
    monkeypatch.setenv("HEALTHCARE_MLOPS_ROLE", APPROVER)
    before = cli.invoke(app, ["--home", str(home), "governance", "status", "--format", "json"])
    assert before.exit_code == 0, before.output
    assert '"challenger": 2' in before.output and '"rejected": null' in before.output

    assert version_status(data_frame_of_versions(), audit_log(manual).history("2"), 2) != audit.REJECTED
    decisions.record_decision(audit_log(manual), OWNER, "2", decisions.REJECT, "the error parity is too wide")
    assert version_status(data_frame_of_versions(), audit_log(manual).history("2"), 2) == audit.REJECTED  # not applied

    shown = cli.invoke(app, ["--home", str(home), "governance", "status"])
    assert shown.exit_code == 0, shown.output
    assert "challenger: none (version 2 was rejected)" in shown.output, shown.output
    assert "challenger checks:" not in shown.output
    as_json = cli.invoke(app, ["--home", str(home), "governance", "status", "--format", "json"])
    assert '"challenger": null' in as_json.output and '"rejected": 2' in as_json.output


def data_frame_of_versions():
    """The versions frame as app/registry.read_registry builds it, with no status tags yet."""
    import pandas as pd

    return pd.DataFrame({"version": [2, 1], "status": ["", ""]})
