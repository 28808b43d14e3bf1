"""Security, issue 24 item 1: a promotion or rollback killed at any step never lets a day be scored
by a version the audit log does not show as champion.

Each test kills ``healthcare-mlops governance promote|rollback`` at one failpoint of the move
(``governance/service.py``: intent, tags, alias, audit row), then runs batch scoring and checks
that the version that scored the day is the audited champion. On the main branch before this
change batch scoring read the raw alias: after ``promotion:after_alias`` it scored with a
version whose promotion the audit log never recorded.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from healthcare_mlops.composition import build_runtime
from healthcare_mlops.runtime.catalog import audit_log
from healthcare_mlops.failpoints import FAILPOINT_ENV, KILLED_EXIT_CODE
from healthcare_mlops.governance.champion import INTENT_TAG, audited_champion, misscored_days
from healthcare_mlops.identity import APPROVER, ROLE_ENV, USER_ENV, Identity
from healthcare_mlops.modeling.artifacts import CHAMPION
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tables import ML_INSURANCE_FEATURES, ML_PATIENT_PREDICTIONS
from healthcare_mlops.tasks import batch_inference

CLI = [sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()"]
STEPS = ("promotion:after_intent", "promotion:after_tags", "promotion:after_alias", "promotion:after_audit")
DAY = dt.date(2026, 1, 2)
SCORED_MEMBERS = 500          # the members each test scores (_keep_the_first_members)


@pytest.fixture(scope="module")
def two_versions(pipeline_home, tmp_path_factory):
    """The session pipeline's home plus version 2 (the same model registered again), validated.

    Version 1 is the champion; version 2 may be promoted and version 1 rolled back to."""
    import shutil

    root = tmp_path_factory.mktemp("two_versions") / "lakehouse"
    shutil.copytree(pipeline_home, root)
    governance = build_runtime(resolve_settings("local", root)).governance(Identity("owner@example.com", APPROVER))
    first = governance.registry.client.get_model_version(governance.model_name, "1")
    second = governance.registry.client.create_model_version(governance.model_name, first.source, first.run_id,
                                                    tags={k: v for k, v in first.tags.items()
                                                          if not k.startswith("check.") and k != "governance_status"})
    assert str(second.version) == "2"
    assert governance.validate(2).passed
    _keep_the_first_members(resolve_settings("local", root), SCORED_MEMBERS)
    return root


def _keep_the_first_members(settings, count: int) -> None:
    """Cut the features the day is scored from to ``count`` members, after version 2's validation
    (which needs the whole population): which version scores a day does not depend on how many
    members it scores, and each test's batch scoring then takes seconds, not the 20,000 members'."""
    catalog = DeltaCatalog(settings)
    features = catalog.read_arrow(ML_INSURANCE_FEATURES)
    as_of = set(features.column("as_of_date").to_pylist())
    assert len(as_of) == 1 and features.num_rows > count
    kept = features.sort_by("patient_natural_key").slice(0, count)
    catalog.write(kept, ML_INSURANCE_FEATURES, mode="replace_partition", partition={"as_of_date": as_of.pop()},
                  partition_by=["as_of_date"])
    assert catalog.read_arrow(ML_INSURANCE_FEATURES).num_rows == count


def _kill(home, point: str, *args: str) -> None:
    env = {**os.environ, "HEALTHCARE_MLOPS_HOME": str(home), FAILPOINT_ENV: point,
           USER_ENV: "owner@example.com", ROLE_ENV: APPROVER}
    killed = subprocess.run([*CLI, "governance", *args], env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == KILLED_EXIT_CODE, killed.stdout[-2000:] + killed.stderr[-2000:]


def _scored_versions(settings) -> set:
    table = DeltaCatalog(settings).read_arrow(ML_PATIENT_PREDICTIONS, [("scoring_date", "=", DAY)], ["model_version"])
    return set(table.column("model_version").to_pylist())


def _score_and_check(home, old: str, new: str, point: str) -> None:
    settings = resolve_settings("local", home)
    client = build_runtime(settings).mlflow_client
    assert INTENT_TAG in client.get_registered_model(settings.model_name).tags       # the move is half done
    expected = new if point == "promotion:after_audit" else old     # the audit row is what makes it champion
    assert audited_champion(audit_log(settings)) == expected
    result = batch_inference.run(build_runtime(settings), DAY)
    assert result["model_version"] == expected
    assert _scored_versions(settings) == {expected}
    assert result["predictions"] + result["quarantined"] == SCORED_MEMBERS
    assert misscored_days(audit_log(settings)) == []


@pytest.mark.parametrize("point", STEPS)
def test_a_promotion_killed_at_any_step_scores_with_the_audited_champion(spark, two_versions, private_home, point):
    """Attack (issue 24, item 1): kill `governance promote --version 2` at each step, then score a day."""
    home = private_home(two_versions)
    _kill(home, point, "promote", "--version", "2")
    _score_and_check(home, "1", "2", point)


@pytest.mark.parametrize("point", STEPS)
def test_a_rollback_killed_at_any_step_scores_with_the_audited_champion(spark, two_versions, private_home, point):
    """Attack (issue 24, item 1): kill `governance rollback --to-version 1` at each step, then score a day."""
    home = private_home(two_versions)
    governance = build_runtime(resolve_settings("local", home)).governance(Identity("owner@example.com", APPROVER))
    governance.promote(2)
    _kill(home, point, "rollback", "--to-version", "1")
    _score_and_check(home, "2", "1", point)


def test_a_day_scored_from_a_half_moved_alias_is_named_by_the_repair(spark, two_versions, private_home):
    """Attack (issue 24, item 1): a day scored from the raw alias during an interrupted rollback (as
    batch scoring did before this change) is named for rescoring when the move is repaired."""
    home = private_home(two_versions)
    settings = resolve_settings("local", home)
    build_runtime(settings).governance(Identity("owner@example.com", APPROVER)).promote(2)
    batch_inference.run(build_runtime(settings), DAY)
    _kill(home, "promotion:after_alias", "rollback", "--to-version", "1")
    # what an alias reader wrote: the day's predictions from version 1, which the audit never made champion
    catalog = DeltaCatalog(settings)
    day = catalog.read_arrow(ML_PATIENT_PREDICTIONS, [("scoring_date", "=", DAY)])
    stamped = day.set_column(day.schema.get_field_index("model_version"), "model_version",
                             pa.array(["1"] * day.num_rows))
    now = pa.scalar(dt.datetime.now(dt.timezone.utc), day.schema.field("scored_at").type)
    stamped = stamped.set_column(stamped.schema.get_field_index("scored_at"), "scored_at",
                                 pc.cast(pa.array([now] * day.num_rows), day.schema.field("scored_at").type))
    catalog.write(stamped, ML_PATIENT_PREDICTIONS, mode="replace_partition", partition={"scoring_date": DAY},
                  partition_by=["scoring_date"])
    wrong = misscored_days(audit_log(settings))
    assert wrong == [{"scoring_date": DAY.isoformat(), "model_version": "1", "champion": "2",
                      "scored_at": str(wrong[0]["scored_at"])}]

    repaired = build_runtime(settings).governance(Identity("owner@example.com", APPROVER))
    assert repaired.recover() == "rolled back"                                     # the explicit repair
    assert repaired.alias(CHAMPION) == "2"
    comment = audit_log(settings).history().iloc[-1]["comment"]
    assert "rolled back" in comment and f"rescore: {DAY.isoformat()} (version 1, champion 2)" in comment
