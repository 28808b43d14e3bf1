"""The load_members job: members into silver_patients and dim_patients on a fresh workspace.

It calls the same functions as ``data ingest`` and ``data generate`` (validation,
quarantine, SCD2), here on the local runtime with real Spark and Delta tables.
"""

from __future__ import annotations

import datetime as dt

import pytest

from healthcare_mlops.composition import build_runtime
from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, DIM_PATIENTS, MEMBER_LOADS, SILVER_PATIENTS
from healthcare_mlops.tasks import load_members
from healthcare_mlops.tasks.arguments import parse_task_arguments

BASE = ["--target", "local", "--catalog", "hc_local", "--schema", "insurance"]


@pytest.mark.parametrize("argv, message", [
    (["--source", "parquet"], "--source must be one of csv, synthetic, not 'parquet'"),
    (["--source", "csv", "--path", ""], "--source csv needs --path"),
    (["--source", "synthetic", "--patients", "many", "--seed", "1"], "--patients must be a whole number, not 'many'"),
    (["--source", "synthetic", "--patients", "0", "--seed", "1"], "--patients must be at least 1, not 0"),
    (["--source", "csv", "--path", "/x.csv", "--as_of", "15/01/2026"], "as-of date must be YYYY-MM-DD"),
    (["--source", "csv", "--path", "/x.csv", "--replace", "yes please"],
     "--replace must be true or false, not 'yes please'"),
])
def test_bad_parameters_are_refused_before_any_spark_work(argv, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        load_members.plan(parse_task_arguments(BASE + argv))


def test_empty_as_of_means_today_and_the_generator_keeps_its_options():
    plan = load_members.plan(parse_task_arguments(
        BASE + ["--source", "synthetic", "--patients", "300", "--seed", "7", "--scenario", "", "--as_of", ""]))
    assert plan == {"source": "synthetic", "as_of": dt.datetime.now(dt.timezone.utc).date(), "replace": False,
                    "patients": 300, "seed": 7, "scenario": "baseline"}


def test_a_csv_from_a_volume_path_and_a_synthetic_load_fill_the_source_tables(spark, settings, tmp_path):
    landing = tmp_path / "Volumes" / "hc_local" / "insurance" / "landing"
    landing.mkdir(parents=True)
    (landing / "insurance.csv").write_text(
        "age,sex,bmi,children,smoker,region,charges\n"
        "19,female,27.9,0,yes,southwest,16884.924\n"
        "18,male,33.77,1,no,southeast,1725.5523\n"
        "230,male,33,3,no,southeast,4449.462\n")            # age out of range: quarantined
    report = load_members.run(build_runtime(settings), parse_task_arguments(
        BASE + ["--source", "csv", "--path", str(landing / "insurance.csv"), "--as_of", "2026-01-15"]))
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (3, 2, 1)

    generated = load_members.run(build_runtime(settings), parse_task_arguments(
        BASE + ["--source", "synthetic", "--patients", "200", "--seed", "3", "--as_of", "2026-01-15"]))
    assert generated.rows_in == 200 and generated.rows_loaded + generated.rows_quarantined == 200
    store = DeltaCatalog(settings)
    assert all(store.exists(name) for name in (SILVER_PATIENTS, DIM_PATIENTS, DATA_QUALITY_QUARANTINE))
    assert generated.current_members == 2 + generated.rows_loaded
    loads = store.read_arrow(MEMBER_LOADS).to_pandas()
    assert set(loads["loaded_by"]) == {f"job:{settings.target}"} and set(loads["role"]) == {"system"}
