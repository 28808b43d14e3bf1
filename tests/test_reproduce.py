"""Reproducible models: lineage on every version, `governance reproduce`, and its failure modes.

Real components throughout: the session pipeline's lakehouse (Spark-built features in
delta-rs tables, MLflow on SQLite), a private copy per test that writes.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from healthcare_mlops.composition import build_runtime
from healthcare_mlops.runtime.catalog import audit_log
from healthcare_mlops.cli.main import app
from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import audit
from healthcare_mlops.governance import reproduce as reproduce_module
from healthcare_mlops.governance.lineage import FRAME_HASH_TAG, PACKAGE_PREFIX, recorded_lineage
from healthcare_mlops.identity import OPERATOR, VIEWER, Identity
from healthcare_mlops.runtime.catalog import table_catalog
from healthcare_mlops.runtime.catalog_base import FILE_RETENTION, LOG_RETENTION
from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tables import ML_INSURANCE_FEATURES

from conftest import PIPELINE_AS_OF

VERSION = "1"                   # pipeline_home's champion


def _reproduce_cli(*args: str):
    return CliRunner().invoke(app, ["governance", "reproduce", "--version", VERSION, *args])


def _tags(settings) -> dict:
    return configure_mlflow(settings).get_model_version(settings.model_name, VERSION).tags


def test_every_version_records_its_complete_lineage(pipeline_home):
    settings = resolve_settings("local", pipeline_home)
    tags = _tags(settings)
    lineage = recorded_lineage(tags, VERSION)
    features = lineage.tables[ML_INSURANCE_FEATURES]
    assert features["table"] == settings.tables.fqn(ML_INSURANCE_FEATURES)
    assert features["location"] == settings.table_location(ML_INSURANCE_FEATURES)
    assert features["delta_version"] == table_catalog(settings).version(ML_INSURANCE_FEATURES)
    assert features["as_of_date"] == PIPELINE_AS_OF
    assert set(lineage.packages) == {"scikit-learn", "numpy", "pandas", "scipy", "mlflow", "pyarrow",
                                     "healthcare-mlops"}
    assert lineage.seed == 42 and lineage.split_salt and lineage.params["candidates"]
    assert lineage.frame_hash.startswith("sha256:") and lineage.git_commit
    run = configure_mlflow(settings).get_run(configure_mlflow(settings).get_model_version(
        settings.model_name, VERSION).run_id)
    assert run.data.tags[FRAME_HASH_TAG] == lineage.frame_hash          # on the run too
    card = configure_mlflow(settings).get_model_version(settings.model_name, VERSION).description
    assert "## Lineage" in card and lineage.frame_hash in card
    from deltalake import DeltaTable

    configuration = DeltaTable(settings.table_location(ML_INSURANCE_FEATURES)).metadata().configuration
    assert configuration[LOG_RETENTION] == configuration[FILE_RETENTION] == "interval 1095 days"


def test_reproduce_passes_on_an_untouched_version_and_is_recorded(copy_home, monkeypatch):
    monkeypatch.setenv("HEALTHCARE_MLOPS_ROLE", OPERATOR)
    result = _reproduce_cli("--format", "json")
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.stdout)
    assert report["passed"] and report["result"] == "identical" and report["differences"] == []
    names = {c["name"] for c in report["comparisons"]}
    assert {"training frame hash", "selected candidate", "metric test_mae", "metric cv_r2",
            "package scikit-learn", "check fairness_mae_ratio_sex"} <= names
    predictions = [c for c in report["comparisons"] if c["name"].startswith("predictions predicted_annual_charges")]
    assert predictions and predictions[0]["reproduced"] == "0.0"
    settings = resolve_settings("local", copy_home)
    tags = _tags(settings)
    assert tags["reproduction_result"] == "identical" and dt.datetime.fromisoformat(tags["reproduced_at"])
    rows = audit_log(settings).history(VERSION)
    reproduced = rows[rows["action"] == audit.REPRODUCED]
    assert len(reproduced) == 1 and reproduced.iloc[-1]["role"] == OPERATOR
    assert bool(reproduced.iloc[-1]["hard_checks_passed"]) is True


def test_reproduce_detects_a_changed_row_and_a_changed_package(copy_home, monkeypatch):
    settings = resolve_settings("local", copy_home)
    catalog = table_catalog(settings)
    as_of = dt.date.fromisoformat(PIPELINE_AS_OF)
    member = catalog.read_arrow(ML_INSURANCE_FEATURES, [("as_of_date", "=", as_of)],
                                ["patient_natural_key"]).column(0)[0].as_py()
    assert catalog.update(ML_INSURANCE_FEATURES, {"annual_charges": 123456.0},
                          [("patient_natural_key", "=", member), ("as_of_date", "=", as_of)]) == 1
    # Time travel bypassed on purpose: the "recorded" read returns the table as it is now.
    monkeypatch.setattr(reproduce_module, "read_recorded_frame", lambda settings, entry: catalog.read_pandas(
        ML_INSURANCE_FEATURES, [("as_of_date", "=", as_of)]))
    client = configure_mlflow(settings)
    client.set_model_version_tag(settings.model_name, VERSION, f"{PACKAGE_PREFIX}scikit-learn", "0.0.1")
    result = _reproduce_cli()
    assert result.exit_code == 1 and isinstance(result.exception, UserError)
    message = str(result.exception)
    assert "training frame hash" in message and "package scikit-learn" in message
    assert "package scikit-learn: recorded 0.0.1" in result.stdout
    assert _tags(settings)["reproduction_result"].startswith("different: ")
    rows = audit_log(settings).history(VERSION)
    assert rows[rows["action"] == audit.REPRODUCED].iloc[-1]["hard_checks_passed"] == False  # noqa: E712


def test_a_vacuumed_version_is_named_with_the_retention_that_keeps_it(copy_home):
    from deltalake import DeltaTable

    settings = resolve_settings("local", copy_home)
    catalog = table_catalog(settings)
    as_of = dt.date.fromisoformat(PIPELINE_AS_OF)
    recorded = recorded_lineage(_tags(settings), VERSION).tables[ML_INSURANCE_FEATURES]["delta_version"]
    same_rows = catalog.read_arrow(ML_INSURANCE_FEATURES, [("as_of_date", "=", as_of)])
    catalog.write(same_rows, ML_INSURANCE_FEATURES, mode="replace_partition", partition={"as_of_date": as_of},
                  partition_by=["as_of_date"])
    DeltaTable(settings.table_location(ML_INSURANCE_FEATURES)).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False)
    result = _reproduce_cli()
    assert result.exit_code == 1
    message = str(result.exception)
    assert f"{settings.tables.fqn(ML_INSURANCE_FEATURES)} version {recorded} is no longer readable" in message
    assert LOG_RETENTION in message and FILE_RETENTION in message and "table_retention_days" in message
    assert _tags(settings)["reproduction_result"].startswith("not reproducible: ")


def test_a_viewer_may_not_reproduce(copy_home):
    with pytest.raises(UserError, match="reproduce needs the operator role"):
        reproduce_module.reproduce_version(build_runtime(resolve_settings("local", copy_home)).reproduction_sources(),
                                           Identity("v@x", VIEWER), VERSION)


@pytest.mark.parametrize("hostile", ["1; DROP TABLE model_versions", "-1", "1 OR 1=1", "../../etc/passwd", ""])
def test_a_version_that_is_not_a_number_is_refused_before_anything_runs(settings, hostile):
    with pytest.raises(UserError, match="a model version is a number"):
        reproduce_module.reproduce_version(build_runtime(settings).reproduction_sources(), Identity("o@x", OPERATOR),
                                           hostile)
    assert not settings.mlflow_dir.exists()          # refused before the registry was opened


def test_a_version_the_registry_does_not_hold_is_named(pipeline_home):
    settings = resolve_settings("local", pipeline_home)
    with pytest.raises(UserError, match="has no version 999"):
        reproduce_module.reproduce_version(build_runtime(settings).reproduction_sources(), Identity("o@x", OPERATOR),
                                           "999")
    result = CliRunner().invoke(app, ["governance", "reproduce", "--version", "1;rm -rf /"])
    assert result.exit_code == 2 and "integer" in " ".join(result.output.split())     # Typer refuses it
