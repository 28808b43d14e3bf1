"""Governance: every check on a passing and a failing case, approvals, promotion, audit, recovery."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pytest

from healthcare_mlops.data.population import Shape
from healthcare_mlops.errors import UserError
from healthcare_mlops.features.definitions import AGE_BANDS, MODEL_INPUT_COLUMNS, band
from healthcare_mlops.governance import audit
from healthcare_mlops.governance.checks import (FAIL, PASS, WARN, Evidence, champion_check, fairness_checks,
                                                four_fifths_check, hard_failures, lineage_check,
                                                prohibited_inputs_check, run_checks)
from healthcare_mlops.governance.service import CHAMPION, CHALLENGER, INTENT_TAG, Governance
from healthcare_mlops.governance.thresholds import GovernanceThresholds
from healthcare_mlops.identity import APPROVER, OPERATOR, VIEWER, Identity
from healthcare_mlops.modeling.training import train
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tasks import model_governance
from healthcare_mlops.tasks.model_training import log_and_register

FAST = ("hist_gradient_boosting_poisson",)
APPROVING = Identity("owner@example.com", APPROVER)
DATA_VERSION = {"table": "features", "as_of_date": "2026-01-01", "delta_version": 1}


@pytest.fixture(scope="module")
def thresholds() -> GovernanceThresholds:
    return GovernanceThresholds.from_variables(resolve_settings("local").variables)


def _group(column, value, n, mae, calibration=1.0, critical=0.05):
    return {"group_column": column, "group_value": value, "n": n, "mae": mae,
            "calibration_ratio": calibration, "critical_share": critical}


FAIR_GROUPS = [_group("sex", "female", 300, 2000), _group("sex", "male", 300, 2100),
               _group("region", "northeast", 150, 2000), _group("region", "southeast", 150, 2200),
               _group("age_band", "18-29", 100, 1900), _group("age_band", "60+", 100, 2100)]


def _evidence(**changes) -> Evidence:
    values = dict(metrics={"r2": 0.85, "mae": 2000.0, "risk_score_mae": 7.0, "high_risk_capture": 0.85},
                  groups=FAIR_GROUPS, inputs=list(MODEL_INPUT_COLUMNS), model_loads=True, champion_mae=None,
                  lineage={"training_data_version": "{}", "git_commit": "abc", "run_id": "r1"})
    values.update(changes)
    return Evidence(**values)


def test_a_good_model_passes_every_hard_check(thresholds):
    checks = run_checks(_evidence(), thresholds)
    assert hard_failures(checks) == []
    assert {c.name for c in checks} >= {"r2", "risk_score_mae", "high_risk_capture", "no_prohibited_inputs",
                                        "fairness_mae_ratio_sex", "calibration_region", "champion_comparison",
                                        "loads_and_predicts", "lineage", "critical_share_four_fifths_sex"}


@pytest.mark.parametrize("metric,value,check", [("r2", 0.5, "r2"), ("risk_score_mae", 16.0, "risk_score_mae"),
                                                ("high_risk_capture", 0.4, "high_risk_capture"),
                                                ("r2", None, "r2"), ("r2", float("nan"), "r2")])
def test_metric_checks_fail_below_threshold_or_when_not_computed(thresholds, metric, value, check):
    metrics = {"r2": 0.85, "mae": 2000.0, "risk_score_mae": 7.0, "high_risk_capture": 0.85, metric: value}
    failed = {c.name for c in hard_failures(run_checks(_evidence(metrics=metrics), thresholds))}
    assert check in failed


def test_prohibited_inputs(thresholds):
    assert prohibited_inputs_check(list(MODEL_INPUT_COLUMNS)).verdict == PASS
    for bad in ("sex", "ssn", "zip_code", "first_name", "date_of_birth", "member_id"):
        check = prohibited_inputs_check([*MODEL_INPUT_COLUMNS, bad])
        assert check.verdict == FAIL and bad in check.value
    assert prohibited_inputs_check([]).verdict == FAIL


def test_fairness_ratio_calibration_and_small_groups(thresholds):
    unfair = [g if g["group_value"] != "southeast" else {**g, "mae": 2000 * 1.3} for g in FAIR_GROUPS]
    verdicts = {c.name: c.verdict for c in fairness_checks(unfair, thresholds)}
    assert verdicts["fairness_mae_ratio_region"] == FAIL and verdicts["fairness_mae_ratio_sex"] == PASS
    miscalibrated = [g if g["group_value"] != "male" else {**g, "calibration_ratio": 1.15} for g in FAIR_GROUPS]
    assert {c.name: c.verdict for c in fairness_checks(miscalibrated, thresholds)}["calibration_sex"] == FAIL
    # A tiny, badly served group is reported but not judged.
    with_small = FAIR_GROUPS + [_group("region", "northwest", 12, 9000, calibration=2.0)]
    region = {c.name: c for c in fairness_checks(with_small, thresholds)}
    assert region["fairness_mae_ratio_region"].verdict == PASS
    assert "northwest (n=12)" in region["fairness_mae_ratio_region"].detail


def test_four_fifths_is_a_soft_flag(thresholds):
    skewed = [_group("sex", "female", 300, 2000, critical=0.02), _group("sex", "male", 300, 2000, critical=0.08)]
    check = four_fifths_check(skewed, thresholds)
    assert check.verdict == WARN and check.hard is False and check.value == pytest.approx(0.25)
    assert four_fifths_check(FAIR_GROUPS, thresholds).verdict == PASS


def test_champion_comparison_and_lineage(thresholds):
    assert champion_check(2000.0, None, thresholds).verdict == PASS
    assert champion_check(2100.0, 2000.0, thresholds).verdict == PASS      # 5 % worse: allowed
    assert champion_check(2200.0, 2000.0, thresholds).verdict == FAIL      # 10 % worse: not
    assert lineage_check({"training_data_version": "{}", "git_commit": "unknown", "run_id": "r"}).verdict == FAIL
    assert lineage_check({"training_data_version": "{}", "git_commit": "abc", "run_id": "r"}).verdict == PASS


# -- against a real registry ---------------------------------------------------------------

class ScaledPipeline:
    """A model that predicts ``factor`` times another pipeline: measurably worse, same inputs."""

    def __init__(self, pipeline, factor):
        self.pipeline, self.factor = pipeline, factor

    def predict(self, inputs):
        return self.pipeline.predict(inputs) * self.factor


@pytest.fixture(scope="module")
def registry(spark, tmp_path_factory):
    """A local home whose registry holds v1 good, v2 trained with sex, v3 shuffled labels, v4 worse."""
    from healthcare_mlops.spark.generator import generate_load

    home = tmp_path_factory.mktemp("governance") / "lakehouse"
    settings = resolve_settings("local", home)
    frame = generate_load(spark, 9, dt.date(2026, 1, 1), 20000, Shape()).toPandas()
    frame = frame[frame["annual_charges"].notna()].reset_index(drop=True)
    frame["age_band"] = band(frame["age"], AGE_BANDS)
    good = train(frame, seed=1, candidates=FAST)
    log_and_register(settings, good, DATA_VERSION, commit="abc123")
    with_sex = train(frame, seed=1, candidates=FAST, inputs=(*MODEL_INPUT_COLUMNS, "sex"))
    log_and_register(settings, with_sex, DATA_VERSION, inputs=(*MODEL_INPUT_COLUMNS, "sex"), commit="abc123")
    shuffled = frame.assign(annual_charges=np.random.default_rng(0).permutation(frame["annual_charges"]))
    log_and_register(settings, train(shuffled, seed=1, candidates=FAST), DATA_VERSION, commit="abc123")
    good.pipeline = ScaledPipeline(good.pipeline, 1.25)
    log_and_register(settings, good, DATA_VERSION, commit="abc123")
    return home


@pytest.fixture
def home(registry, private_home):
    return private_home(registry)


def _governance(home, role=APPROVER, **variables) -> Governance:
    return Governance(resolve_settings("local", home, variables), Identity("owner@example.com", role))


def _set_challenger(governance, version):
    governance.client.set_registered_model_alias(governance.model_name, CHALLENGER, str(version))


def test_the_job_promotes_a_passing_challenger_and_rerunning_is_idempotent(home):
    governance = _governance(home)
    _set_challenger(governance, 1)
    settings = resolve_settings("local", home)
    assert model_governance.run(settings) == model_governance.PROMOTED
    assert governance.alias(CHAMPION) == "1"
    events = audit.history(settings)
    assert list(events["action"]) == [audit.VALIDATED, audit.PROMOTED]
    assert model_governance.run(settings) == model_governance.ALREADY_CHAMPION
    assert len(audit.history(settings)) == len(events)
    tags = governance.client.get_model_version(governance.model_name, "1").tags
    assert '"verdict": "pass"' in tags["check.r2"]
    description = governance.client.get_model_version(governance.model_name, "1").description
    assert "# Model card" in description and "Governance history" in description and "promoted" in description


def test_a_model_trained_with_sex_is_refused(home):
    governance = _governance(home)
    _set_challenger(governance, 2)
    with pytest.raises(model_governance.GovernanceFailed, match="no_prohibited_inputs"):
        model_governance.run(resolve_settings("local", home))
    assert governance.alias(CHAMPION) is None
    checks = {c.name: c for c in governance.latest_validation("2").checks}
    assert checks["no_prohibited_inputs"].verdict == FAIL and checks["no_prohibited_inputs"].value == "sex"


def test_a_model_trained_on_shuffled_labels_fails_r2(home):
    validation = _governance(home).validate(3)
    failed = {c.name: c for c in validation.failures}
    assert "r2" in failed and failed["r2"].value < 0.70


def test_a_model_much_worse_than_the_champion_is_not_promoted(home):
    governance = _governance(home)
    _set_challenger(governance, 1)
    governance.promote(1)
    _set_challenger(governance, 4)
    with pytest.raises(model_governance.GovernanceFailed, match="champion_comparison"):
        model_governance.run(resolve_settings("local", home))
    assert governance.alias(CHAMPION) == "1"
    check = {c.name: c for c in governance.latest_validation("4").checks}["champion_comparison"]
    assert check.value > 1.10


def test_manual_mode_waits_for_an_approver_and_the_approval_promotes(home):
    settings = resolve_settings("local", home, {"approval_mode": "manual"})
    governance = _governance(home, approval_mode="manual")
    _set_challenger(governance, 1)
    assert model_governance.run(settings) == model_governance.WAITING
    assert governance.status()["pending"] == [1] and governance.alias(CHAMPION) is None
    with pytest.raises(UserError, match="approve needs the approver role"):
        _governance(home, role=OPERATOR, approval_mode="manual").approve(1, "looks good")
    with pytest.raises(UserError, match="approve needs the approver role"):
        _governance(home, role=VIEWER, approval_mode="manual").approve(1, "looks good")
    assert governance.approve(1, "checked the fairness table") == "1"
    assert governance.alias(CHAMPION) == "1"
    status = governance.status()
    assert status["champion"] == 1 and status["pending"] == []
    actions = list(audit.history(settings, "1")["action"])
    assert actions[-2:] == [audit.APPROVED, audit.PROMOTED]


def test_override_needs_a_reason_and_is_recorded(home):
    governance = _governance(home, approval_mode="manual")
    _set_challenger(governance, 3)
    with pytest.raises(UserError, match="needs --override-reason"):
        governance.approve(3, "ship it")
    governance.approve(3, "ship it", override_reason="regulator-mandated refresh; R2 accepted for one cycle")
    assert governance.alias(CHAMPION) == "3"
    events = audit.history(resolve_settings("local", home), "3")
    overridden = events[events["action"] == audit.OVERRIDDEN].iloc[-1]
    assert overridden["override_reason"].startswith("regulator-mandated")
    assert overridden["hard_checks_passed"] is False or overridden["hard_checks_passed"] == False  # noqa: E712


def test_reject_keeps_the_champion_and_rollback_moves_it_back(home):
    governance = _governance(home)
    _set_challenger(governance, 1)
    governance.promote(1)
    _set_challenger(governance, 3)
    governance.reject(3, "R2 far too low")
    assert governance.alias(CHAMPION) == "1"
    with pytest.raises(UserError, match="rejected"):
        governance.promote(3)
    with pytest.raises(UserError, match="never passed"):
        governance.rollback(3)
    # Force v4 in with an override, then roll back to v1.
    governance.approve(4, "pilot", override_reason="pilot on one region")
    assert governance.alias(CHAMPION) == "4"
    assert governance.rollback(1) == "1"
    assert governance.alias(CHAMPION) == "1"
    assert audit.ROLLED_BACK in set(audit.history(resolve_settings("local", home), "1")["action"])
    with pytest.raises(UserError, match="rollback needs the approver role"):
        _governance(home, role=OPERATOR).rollback(4)


@pytest.mark.parametrize("point", ["promotion:after_tags", "promotion:after_alias"])
def test_a_promotion_killed_half_way_is_rolled_back_on_the_next_run(home, point):
    governance = _governance(home)
    _set_challenger(governance, 1)
    governance.promote(1)
    _set_challenger(governance, 4)
    governance.approve(4, "pilot", override_reason="pilot")  # v4 champion, so v1 can be rolled back to
    script = ("from healthcare_mlops.governance.service import Governance\n"
              "from healthcare_mlops.identity import Identity\n"
              "from healthcare_mlops.settings import resolve_settings\n"
              f"Governance(resolve_settings('local', {str(home)!r}), Identity('o', 'approver')).rollback(1)\n")
    killed = subprocess.run([sys.executable, "-c", script], env={**__import__("os").environ,
                            "HEALTHCARE_MLOPS_FAILPOINT": point}, capture_output=True, text=True)
    assert killed.returncode == 137
    client = governance.client
    assert INTENT_TAG in client.get_registered_model(governance.model_name).tags
    repaired = _governance(home)            # any governance call repairs first
    assert INTENT_TAG not in client.get_registered_model(governance.model_name).tags
    assert repaired.alias(CHAMPION) == "4"
    assert client.get_model_version(governance.model_name, "4").tags["governance_status"] == CHAMPION
    events = audit.history(resolve_settings("local", home), "1")
    assert audit.ROLLED_BACK not in set(events["action"])
    assert repaired.rollback(1) == "1"


def test_only_a_missing_model_version_or_alias_reads_as_absent(tmp_path):
    """A registry that refuses access must not look like a registry without a champion."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

    from healthcare_mlops.runtime.mlflow_setup import find_in_registry

    database = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=database, registry_uri=database)
    client.create_registered_model("m")
    assert find_in_registry(client.get_model_version_by_alias, "m", "champion") is None     # no such alias
    assert find_in_registry(client.get_model_version, "m", "7") is None                      # no such version
    assert find_in_registry(client.get_registered_model, "nope") is None                     # no such model
    assert find_in_registry(client.get_registered_model, "m").name == "m"

    def refused(*args):
        raise MlflowException("User does not have EXECUTE on the model", error_code=PERMISSION_DENIED)

    with pytest.raises(MlflowException, match="does not have EXECUTE"):
        find_in_registry(refused, "m", "champion")
