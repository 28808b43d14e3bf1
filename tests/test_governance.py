"""Governance: every check on a passing and a failing case, approvals, promotion, audit, recovery."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from healthcare_mlops.composition import build_runtime
from healthcare_mlops.runtime.catalog import audit_log
from healthcare_mlops.data.population import Shape
from healthcare_mlops.errors import UserError
from healthcare_mlops.features.definitions import AGE_BANDS, MODEL_INPUT_COLUMNS, band
from healthcare_mlops.governance import audit
from healthcare_mlops.governance.checks import (FAIL, PASS, REFER, TOO_FEW, WARN, Evidence, champion_check,
                                                fairness_checks, four_fifths_check, hard_failures, lineage_check,
                                                prohibited_inputs_check, referrals, run_checks)
from healthcare_mlops.governance.group_evidence import FRAME_COLUMNS
from healthcare_mlops.governance.service import CHAMPION, CHALLENGER, INTENT_TAG, Governance
from healthcare_mlops.governance.thresholds import GovernanceThresholds
from healthcare_mlops.identity import APPROVER, OPERATOR, VIEWER, Identity
from healthcare_mlops.modeling.training import LEARNING_CURVE_FILE, train
from healthcare_mlops.privacy import PROHIBITED_FIELD_NAMES, prohibited_inputs
from healthcare_mlops.parameters import governance_thresholds
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tasks import model_governance
from healthcare_mlops.tasks.model_training import log_and_register

FAST = ("hist_gradient_boosting_poisson",)
APPROVING = Identity("owner@example.com", APPROVER)
AS_OF = dt.date(2026, 1, 1)
FEATURE_COLUMNS = ("patient_natural_key", "age", "bmi", "children", "smoker", "region", "sex", "age_band",
                   "family_size_category", "annual_charges")


@pytest.fixture(scope="module")
def thresholds() -> GovernanceThresholds:
    return governance_thresholds(resolve_settings("local").variables)


def _oof(n=1200, seed=0, female_factor=1.0, southeast_factor=1.0, small_group=None) -> pd.DataFrame:
    """Out-of-fold evidence of a fair model on members shaped like the public table."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 65, n)
    smoker = rng.random(n) < 0.2
    actual = np.where(smoker, 30000, 3000) + 265 * age + rng.gamma(2.0, 700, n)
    predicted = actual * rng.normal(1.0, 0.12, n)
    frame = pd.DataFrame({
        "sex": np.where(rng.random(n) < 0.5, "female", "male"),
        "region": rng.choice(["northeast", "northwest", "southeast", "southwest"], n),
        "age_band": band(age, AGE_BANDS), "smoker": smoker,
        "family_size_category": rng.choice(["individual", "small", "large"], n),
        "annual_charges": actual, "predicted_annual_charges": predicted,
        "critical": predicted >= np.quantile(predicted, 0.95)})
    frame.loc[frame["sex"] == "female", "predicted_annual_charges"] *= female_factor
    frame.loc[frame["region"] == "southeast", "predicted_annual_charges"] *= southeast_factor
    if small_group is not None:
        frame.loc[frame.index[:12], "region"] = small_group
    return frame


FAIR_OOF = _oof()
GOOD_METRICS = {"r2": 0.85, "mae": 2000.0, "risk_score_mae": 7.0, "high_risk_capture": 0.85, "calibration": 0.97,
                "test_rows": 250}


def _evidence(**changes) -> Evidence:
    values = dict(metrics=dict(GOOD_METRICS), oof=FAIR_OOF, inputs=list(MODEL_INPUT_COLUMNS), model_loads=True,
                  champion_metrics=None,
                  lineage={"training_data_version": "{}", "git_commit": "abc", "run_id": "r1"})
    values.update(changes)
    return Evidence(**values)


def test_a_good_model_passes_every_hard_check(thresholds):
    checks = run_checks(_evidence(), thresholds)
    assert hard_failures(checks) == [] and referrals(checks) == []
    assert {c.name for c in checks} >= {"r2", "risk_score_mae", "high_risk_capture", "no_prohibited_inputs",
                                        "fairness_mae_ratio_sex", "calibration_region", "champion_comparison",
                                        "loads_and_predicts", "lineage", "critical_share_four_fifths_sex",
                                        "calibration_overall", "calibration_family_size_category",
                                        "fairness_mae_ratio_smoker"}
    sex = {c.name: c for c in checks}["calibration_sex"]
    assert sex.hard and sex.interval[0] < sex.value < sex.interval[1] and sex.group in ("female", "male")


@pytest.mark.parametrize("metric,value,check", [("r2", 0.5, "r2"), ("risk_score_mae", 16.0, "risk_score_mae"),
                                                ("high_risk_capture", 0.4, "high_risk_capture"),
                                                ("r2", None, "r2"), ("r2", float("nan"), "r2")])
def test_metric_checks_fail_below_threshold_or_when_not_computed(thresholds, metric, value, check):
    metrics = {**GOOD_METRICS, metric: value}
    failed = {c.name for c in hard_failures(run_checks(_evidence(metrics=metrics), thresholds))}
    assert check in failed


def test_a_floor_the_champion_also_misses_is_referred_not_refused(thresholds):
    low = {**GOOD_METRICS, "high_risk_capture": 0.55}
    both = {c.name: c for c in run_checks(_evidence(metrics=low, champion_metrics={**low, "high_risk_capture": 0.52}),
                                          thresholds)}
    assert both["high_risk_capture"].verdict == REFER
    assert "0.55" in both["high_risk_capture"].detail and "0.52" in both["high_risk_capture"].detail
    only = {c.name: c for c in run_checks(_evidence(metrics=low, champion_metrics=dict(GOOD_METRICS)), thresholds)}
    assert only["high_risk_capture"].verdict == FAIL and "champion meets" in only["high_risk_capture"].detail


def test_overall_calibration_is_a_performance_flag_not_a_fairness_verdict(thresholds):
    shifted = _oof(female_factor=0.8)
    shifted["predicted_annual_charges"] = shifted["predicted_annual_charges"] * 1.0
    everyone_low = _oof()
    everyone_low["predicted_annual_charges"] *= 0.77          # the drifted day: everyone under-predicted
    checks = {c.name: c for c in run_checks(_evidence(oof=everyone_low, metrics={**GOOD_METRICS, "calibration": 0.77}),
                                            thresholds)}
    assert checks["calibration_overall"].verdict == WARN and not checks["calibration_overall"].hard
    assert "under-predicts" in checks["calibration_overall"].detail
    assert all(checks[f"calibration_{c}"].verdict == PASS for c in ("sex", "region", "age_band"))


def test_prohibited_inputs(thresholds):
    assert prohibited_inputs_check(list(MODEL_INPUT_COLUMNS)).verdict == PASS
    for bad in ("sex", "ssn", "zip_code", "first_name", "date_of_birth", "member_id"):
        check = prohibited_inputs_check([*MODEL_INPUT_COLUMNS, bad])
        assert check.verdict == FAIL and bad in check.value
    assert prohibited_inputs_check([]).verdict == FAIL
    # every field name the model's signature declares so that scoring refuses it is one the check refuses
    assert prohibited_inputs(PROHIBITED_FIELD_NAMES) == list(PROHIBITED_FIELD_NAMES)


def test_rating_factors_warn_the_protected_attribute_fails_and_small_groups_are_not_judged(thresholds):
    region_biased = {c.name: c for c in fairness_checks(_oof(southeast_factor=1.3), thresholds)}
    assert region_biased["calibration_region"].verdict == WARN          # beyond, but a rating factor
    assert not region_biased["calibration_region"].hard and region_biased["calibration_region"].group == "southeast"
    assert "southeast" in region_biased["calibration_region"].detail
    sex_biased = {c.name: c for c in fairness_checks(_oof(female_factor=1.3), thresholds)}
    assert sex_biased["calibration_sex"].verdict == FAIL and sex_biased["calibration_sex"].hard
    assert sex_biased["calibration_sex"].interval[0] > thresholds.calibration_ratio_max
    with_small = {c.name: c for c in fairness_checks(_oof(small_group="territory"), thresholds)}
    assert "too few members to judge: territory (n=12)" in with_small["fairness_mae_ratio_region"].detail
    assert with_small["fairness_mae_ratio_region"].verdict == PASS
    alone = fairness_checks(_oof().assign(sex="female").head(20), thresholds, columns=("sex",))
    assert {c.verdict for c in alone} == {TOO_FEW}


def test_a_point_estimate_beyond_the_threshold_with_an_uncertain_interval_warns():
    from healthcare_mlops.governance.fairness import judge

    assert judge(1.12, 1.05, 1.19, 0.9, 1.1) == WARN
    assert judge(1.15, 1.11, 1.19, 0.9, 1.1) == FAIL
    assert judge(0.85, 0.81, 0.89, 0.9, 1.1) == FAIL
    assert judge(1.0, 0.85, 1.15, 0.9, 1.1) == PASS


def test_four_fifths_is_a_soft_flag(thresholds):
    skewed = _oof()
    skewed["critical"] = (skewed["sex"] == "male") & (skewed["predicted_annual_charges"]
                                                     >= skewed["predicted_annual_charges"].quantile(0.9))
    skewed.loc[skewed.index[:5], "critical"] = True
    check = four_fifths_check(skewed, thresholds)
    assert check.verdict == WARN and check.hard is False and check.value < thresholds.four_fifths_min
    assert four_fifths_check(_oof(n=20000), thresholds).verdict == PASS


def test_champion_comparison_is_in_usd_on_the_same_rows_and_lineage(thresholds):
    assert champion_check(2000.0, None, thresholds).verdict == PASS
    assert champion_check(2100.0, 2000.0, thresholds).verdict == PASS      # 5 % worse: allowed
    worse = champion_check(2200.0, 2000.0, thresholds, rows=250)           # 10 % worse: not
    assert worse.verdict == FAIL and worse.value == 2200.0
    assert "2,100 USD" in worse.threshold and "challenger 2,200 USD, champion 2,000 USD" in worse.detail
    assert "ratio challenger / champion 1.100 (limit 1.05)" in worse.detail      # a ratio, labelled, not a MAE
    assert lineage_check({"training_data_version": "{}", "git_commit": "unknown", "run_id": "r"}).verdict == FAIL
    assert lineage_check({"training_data_version": "{}", "git_commit": "abc", "run_id": "r"}).verdict == PASS


# -- against a real registry ---------------------------------------------------------------

class ScaledPipeline:
    """A model that predicts ``factor`` times another pipeline: measurably worse, same inputs."""

    def __init__(self, pipeline, factor):
        self.pipeline, self.factor = pipeline, factor

    def predict(self, inputs):
        return self.pipeline.predict(inputs) * self.factor


def _store_features(settings, frame: pd.DataFrame) -> dict:
    """Write the members as the features table (governance re-reads the held-out rows from it)."""
    from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
    from healthcare_mlops.tables import ML_INSURANCE_FEATURES

    table = pa.Table.from_pandas(frame[list(FEATURE_COLUMNS)].assign(as_of_date=AS_OF), preserve_index=False)
    catalog = DeltaCatalog(settings)
    catalog.write(table, ML_INSURANCE_FEATURES)
    version = catalog.version(ML_INSURANCE_FEATURES)
    return {"table": settings.tables.fqn(ML_INSURANCE_FEATURES), "as_of_date": str(AS_OF), "delta_version": version}


@pytest.fixture(scope="module")
def registry(spark, tmp_path_factory):
    """A local home whose registry holds v1 good, v2 trained with sex, v3 shuffled labels, v4 the same model
    as v1 (a twin for referrals), v5 worse (predictions x 1.25). v2 and v3 fail on what they were trained
    with (an input, the labels), not on how many rows: they train on a quarter of the members (less of the
    fixture's time); every version is judged on the table's same held-out rows."""
    from healthcare_mlops.features.definitions import FAMILY_SIZE_CATEGORIES
    from healthcare_mlops.spark.generator import generate_load

    home = tmp_path_factory.mktemp("governance") / "lakehouse"
    settings = resolve_settings("local", home)
    frame = generate_load(spark, 9, AS_OF, 20000, Shape()).toPandas()
    frame = frame[frame["annual_charges"].notna()].reset_index(drop=True)
    frame["age_band"] = band(frame["age"], AGE_BANDS)
    frame["family_size_category"] = band(frame["children"], FAMILY_SIZE_CATEGORIES)
    data_version = _store_features(settings, frame)
    good = train(frame, seed=1, candidates=FAST)
    log_and_register(build_runtime(settings), good, data_version, commit="abc123")
    quarter = frame.sample(frac=0.25, random_state=0).reset_index(drop=True)
    with_sex = train(quarter, seed=1, candidates=FAST, inputs=(*MODEL_INPUT_COLUMNS, "sex"))
    log_and_register(build_runtime(settings), with_sex, data_version, inputs=(*MODEL_INPUT_COLUMNS, "sex"),
                     commit="abc123")
    shuffled = quarter.assign(annual_charges=np.random.default_rng(0).permutation(quarter["annual_charges"]))
    log_and_register(build_runtime(settings), train(shuffled, seed=1, candidates=FAST), data_version, commit="abc123")
    log_and_register(build_runtime(settings), good, data_version, commit="abc123")
    good.pipeline = ScaledPipeline(good.pipeline, 1.25)
    log_and_register(build_runtime(settings), good, data_version, commit="abc123")
    return home


@pytest.fixture
def home(registry, private_home):
    return private_home(registry)


def _governance(home, role=APPROVER, **variables) -> Governance:
    return build_runtime(resolve_settings("local", home, variables)).governance(Identity("owner@example.com", role))


def _set_challenger(governance, version):
    governance.registry.client.set_registered_model_alias(governance.model_name, CHALLENGER, str(version))


def test_the_job_promotes_a_passing_challenger_and_rerunning_is_idempotent(home):
    governance = _governance(home)
    _set_challenger(governance, 1)
    settings = resolve_settings("local", home)
    assert model_governance.run(build_runtime(settings)) == model_governance.PROMOTED
    assert governance.alias(CHAMPION) == "1"
    events = audit_log(settings).history()
    assert list(events["action"]) == [audit.VALIDATED, audit.PROMOTED]
    assert model_governance.run(build_runtime(settings)) == model_governance.ALREADY_CHAMPION
    assert len(audit_log(settings).history()) == len(events)
    tags = governance.registry.client.get_model_version(governance.model_name, "1").tags
    assert '"verdict": "pass"' in tags["check.r2"]
    description = governance.registry.client.get_model_version(governance.model_name, "1").description
    assert "# Model card" in description and "Governance history" in description and "promoted" in description


def test_a_model_trained_with_sex_is_refused(home):
    governance = _governance(home)
    _set_challenger(governance, 2)
    with pytest.raises(model_governance.GovernanceFailed, match="no_prohibited_inputs"):
        model_governance.run(build_runtime(resolve_settings("local", home)))
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
    _set_challenger(governance, 5)
    with pytest.raises(model_governance.GovernanceFailed, match="champion_comparison"):
        model_governance.run(build_runtime(resolve_settings("local", home)))
    assert governance.alias(CHAMPION) == "1"
    check = {c.name: c for c in governance.latest_validation("5").checks}["champion_comparison"]
    champion_mae = float(check.detail.split("champion ")[1].split(" USD")[0].replace(",", ""))
    assert check.value > 1.10 * champion_mae and "USD" in check.threshold


def test_manual_mode_waits_for_an_approver_and_the_approval_promotes(home):
    settings = resolve_settings("local", home, {"approval_mode": "manual"})
    governance = _governance(home, approval_mode="manual")
    _set_challenger(governance, 1)
    assert model_governance.run(build_runtime(settings)) == model_governance.WAITING
    assert governance.status()["pending"] == [1] and governance.alias(CHAMPION) is None
    with pytest.raises(UserError, match="approve needs the approver role"):
        _governance(home, role=OPERATOR, approval_mode="manual").approve(1, "looks good")
    with pytest.raises(UserError, match="approve needs the approver role"):
        _governance(home, role=VIEWER, approval_mode="manual").approve(1, "looks good")
    assert governance.approve(1, "checked the fairness table") == "1"
    assert governance.alias(CHAMPION) == "1"
    status = governance.status()
    assert status["champion"] == 1 and status["pending"] == []
    actions = list(audit_log(settings).history("1")["action"])
    assert actions[-2:] == [audit.APPROVED, audit.PROMOTED]


def test_override_needs_a_reason_and_is_recorded(home):
    governance = _governance(home, approval_mode="manual")
    _set_challenger(governance, 3)
    with pytest.raises(UserError, match="needs --override-reason"):
        governance.approve(3, "ship it")
    governance.approve(3, "ship it", override_reason="regulator-mandated refresh; R2 accepted for one cycle")
    assert governance.alias(CHAMPION) == "3"
    events = audit_log(resolve_settings("local", home)).history("3")
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
    # Force v5 in with an override, then roll back to v1.
    governance.approve(5, "pilot", override_reason="pilot on one region")
    assert governance.alias(CHAMPION) == "5"
    assert governance.rollback(1) == "1"
    assert governance.alias(CHAMPION) == "1"
    assert audit.ROLLED_BACK in set(audit_log(resolve_settings("local", home)).history("1")["action"])
    with pytest.raises(UserError, match="rollback needs the approver role"):
        _governance(home, role=OPERATOR).rollback(5)


@pytest.mark.parametrize("point", ["promotion:after_tags", "promotion:after_alias"])
def test_a_promotion_killed_half_way_is_rolled_back_on_the_next_run(home, point):
    governance = _governance(home)
    _set_challenger(governance, 1)
    governance.promote(1)
    _set_challenger(governance, 5)
    governance.approve(5, "pilot", override_reason="pilot")  # v5 champion, so v1 can be rolled back to
    script = ("from healthcare_mlops.composition import build_runtime\n"
              "from healthcare_mlops.identity import Identity\n"
              "from healthcare_mlops.settings import resolve_settings\n"
              f"build_runtime(resolve_settings('local', {str(home)!r})).governance(Identity('o', 'approver'))"
              ".rollback(1)\n")
    killed = subprocess.run([sys.executable, "-c", script], env={**__import__("os").environ,
                            "HEALTHCARE_MLOPS_FAILPOINT": point}, capture_output=True, text=True)
    assert killed.returncode == 137
    client = governance.registry.client
    assert INTENT_TAG in client.get_registered_model(governance.model_name).tags
    repaired = _governance(home)            # building it only reads; the repair is an explicit step
    assert INTENT_TAG in client.get_registered_model(governance.model_name).tags
    assert repaired.status()["interrupted"] == 1
    assert repaired.recover() == "rolled back"
    assert INTENT_TAG not in client.get_registered_model(governance.model_name).tags
    assert repaired.alias(CHAMPION) == "5"
    assert client.get_model_version(governance.model_name, "5").tags["governance_status"] == CHAMPION
    events = audit_log(resolve_settings("local", home)).history("1")
    assert audit.ROLLED_BACK not in set(events["action"])
    assert repaired.rollback(1) == "1"


@pytest.mark.slow
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


def test_a_floor_both_versions_miss_goes_to_an_approver_in_auto_mode(home):
    settings = resolve_settings("local", home, {"high_risk_capture_min": 0.99})
    governance = _governance(home, high_risk_capture_min=0.99)
    _set_challenger(governance, 1)
    governance.approve(1, "first champion", override_reason="capture floor raised after the first version")
    _set_challenger(governance, 4)
    assert model_governance.run(build_runtime(settings)) == model_governance.WAITING          # auto mode, not refused
    assert governance.alias(CHAMPION) == "1"
    status = governance.status()
    assert status["pending"] == [4]
    referred = {c["name"]: c for c in status["referred"]}
    assert set(referred) == {"high_risk_capture"} and "champion" in referred["high_risk_capture"]["detail"]
    events = audit_log(settings).history("4")
    assert events.iloc[-1]["action"] == audit.REFERRED and "high_risk_capture" in events.iloc[-1]["comment"]
    assert governance.approve(4, "capture is a population effect; champion no better") == "4"
    assert audit_log(settings).history("4").iloc[-2]["action"] == audit.APPROVED


def test_evaluation_artifacts_hold_no_member_rows(home):
    import mlflow

    governance = _governance(home)
    run_id = governance.registry.client.get_model_version(governance.model_name, "1").run_id
    artifacts = {a.path for a in governance.registry.client.list_artifacts(run_id, "evaluation")}
    assert artifacts == {"evaluation/group_evidence.parquet", "evaluation/group_metrics.json",
                         f"evaluation/{LEARNING_CURVE_FILE}"}
    curve = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"evaluation/{LEARNING_CURVE_FILE}")).read_text())
    assert curve and all(set(point) == {"rows", "candidate", "cv_mae", "cv_r2"} for point in curve)  # scores only
    evidence = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id,
                                                                   artifact_path="evaluation/group_evidence.parquet"))
    assert tuple(evidence.columns) == FRAME_COLUMNS      # sums per group and bootstrap sample, no member rows
    members = evidence[evidence["sample"] == 0].groupby("group_column")["n"].sum()
    assert (members > 10000).all()                   # every training member, not a 20 % split
    from mlflow.models import Model

    local = mlflow.artifacts.download_artifacts(f"models:/{governance.model_name}/1")
    example = Model.load(local).load_input_example(local)
    from healthcare_mlops.tasks.model_training import SYNTHETIC_INPUT_EXAMPLE

    assert example.to_dict("records") == [dict(r) for r in SYNTHETIC_INPUT_EXAMPLE]
