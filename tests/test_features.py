"""feature_engineering: formulas at every boundary, de-identification, leakage, reruns, quarantine."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from healthcare_mlops.composition import build_runtime, cli_runtime
from healthcare_mlops.dates import parse_optional_date
from healthcare_mlops.data import population as pop
from healthcare_mlops.data.contract import QUARANTINE_COLUMNS, SILVER_COLUMNS, SILVER_SCHEMA_DDL
from healthcare_mlops.errors import UserError
from healthcare_mlops.features.definitions import (AGE_BANDS, BMI_CATEGORIES, FAMILY_SIZE_CATEGORIES,
                                                   FEATURE_COLUMNS, FEATURE_SCHEMA_DDL, LABEL_COLUMN,
                                                   RESTRICTED_ZIP3, age_risk_score, band,
                                                   deidentified_zip3, engineer_features)
from healthcare_mlops.privacy import MEMBER_KEY, member_keys, personal_data
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.spark.features import QUARANTINE_RECORD, band_column, build_features
from healthcare_mlops.tasks.load_members import generate_patients
from healthcare_mlops.spark.scd2 import build_dim_patients
from healthcare_mlops.runtime.catalog import table_catalog
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, DIM_PATIENTS, ML_INSURANCE_FEATURES, SILVER_PATIENTS
from healthcare_mlops.tasks import entrypoint
from healthcare_mlops.tasks import feature_engineering

REPO = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2026, 1, 1)
NEXT = dt.date(2026, 2, 1)
MEMBERS, JOINERS = 800, 80    # the two generated loads of the task tests
FEATURE_INPUTS = ["age", "bmi", "children", "smoker", "region"]

SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
MEMBER_ID = re.compile(r"M\d{10}")
ZIP5 = re.compile(r"(?<!\d)\d{5}(?!\d)")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
NAME = re.compile(r"\b(" + "|".join(pop.FIRST_NAMES + pop.LAST_NAMES) + r")\b", re.IGNORECASE)
IDENTIFIER_COLUMN = re.compile(r"name|ssn|member|zip_code|birth|dob|enroll|phone|email|address|street")


# ----------------------------------------------------------------------------- helpers

def silver_rows(spark, rows: list[dict], as_of: dt.date = AS_OF):
    """silver_patients rows: realistic identifiers plus the given attribute overrides."""
    records = []
    for index, overrides in enumerate(rows):
        row = {
            "patient_natural_key": f"PNK-{index:09d}", "member_id": f"M{index + 4_000_000_000:010d}",
            "first_name": pop.FIRST_NAMES[index % len(pop.FIRST_NAMES)],
            "last_name": pop.LAST_NAMES[index % len(pop.LAST_NAMES)],
            "ssn": f"9{index % 100:02d}-{1 + index % 99:02d}-{1000 + index:04d}", "date_of_birth": None,
            "zip_code": f"{10000 + 37 * index:05d}", "sex": "female" if index % 2 else "male", "age": 40,
            "bmi": 27.0, "children": 1, "smoker": False, "region": "northeast",
            "annual_charges": 10_000.0 + index, "enrollment_date": dt.date(2019, 3, 14),
            "as_of_date": as_of, "source": "generator", "source_row": index,
        }
        row.update(overrides)
        records.append(tuple(row[c] for c in SILVER_COLUMNS))
    return spark.createDataFrame(records, SILVER_SCHEMA_DDL)


def sorted_frame(df) -> pd.DataFrame:
    return df.toPandas().sort_values("patient_natural_key").reset_index(drop=True)


@pytest.fixture(scope="module")
def loaded(spark, tmp_path_factory):
    """A local home with two generated loads (AS_OF, NEXT) in silver_patients and dim_patients."""
    home = tmp_path_factory.mktemp("features-home") / "lakehouse"
    settings = resolve_settings("local", home)
    generate_patients(cli_runtime(settings), MEMBERS, 5, AS_OF)
    generate_patients(cli_runtime(settings), JOINERS, 5, NEXT)
    return settings


@pytest.fixture(scope="module")
def generated(spark, loaded):
    """The generated silver_patients and dim_patients of the task tests' home, as DataFrames."""
    return (table_catalog(loaded, spark).read(SILVER_PATIENTS).cache(),
            table_catalog(loaded, spark).read(DIM_PATIENTS).cache())


@pytest.fixture(scope="module")
def generated_features(generated):
    silver, dim = generated
    features, rejected = build_features(dim, silver, AS_OF)
    return sorted_frame(features), rejected.count()


def read_local(settings, name: str) -> pd.DataFrame:
    return DeltaCatalog(settings).read_arrow(name).to_pandas()


# ----------------------------------------------------------------------------- formulas

AGE_CASES = {18: ("18-29", 1), 29: ("18-29", 1), 30: ("30-39", 2), 39: ("30-39", 2), 40: ("40-49", 3),
             49: ("40-49", 3), 50: ("50-59", 4), 59: ("50-59", 4), 60: ("60+", 5), 89: ("60+", 5),
             90: ("60+", 5), 95: ("60+", 5)}
BMI_CASES = {10.0: "underweight", 18.49: "underweight", 18.5: "normal", 24.99: "normal", 25.0: "overweight",
             29.99: "overweight", 30.0: "obese_1", 34.99: "obese_1", 35.0: "obese_2", 39.99: "obese_2",
             40.0: "obese_3", 80.0: "obese_3"}
CHILDREN_CASES = {0: "individual", 1: "small", 2: "small", 3: "large", 4: "large", 10: "large"}
SMOKER_OBESE_CASES = {(True, 29.99): 0, (True, 30.0): 1, (False, 30.0): 0, (False, 45.0): 0, (True, 45.0): 1}
DOB_CASES = {  # date of birth -> age on AS_OF (the dob wins over the version's age of 50)
    dt.date(1996, 1, 1): 30, dt.date(1996, 1, 2): 29, dt.date(1936, 12, 31): 89, dt.date(1936, 1, 1): 90,
    dt.date(1930, 6, 1): 90, dt.date(1926, 1, 1): 90}
ZIP_CASES = {None: None, "03655": "000", "10012": "100", "12": None, "88401": "000", "02108": "021"}

CASES = ([("age", age, {"age": age}) for age in AGE_CASES]
         + [("bmi", bmi, {"bmi": bmi}) for bmi in BMI_CASES]
         + [("children", n, {"children": n}) for n in CHILDREN_CASES]
         + [("smoker_obese", case, {"smoker": case[0], "bmi": case[1]}) for case in SMOKER_OBESE_CASES]
         + [("dob", dob, {"date_of_birth": dob, "age": 50}) for dob in DOB_CASES]
         + [("zip", zip_code, {"zip_code": zip_code}) for zip_code in ZIP_CASES])


HISTORY_KEY = "PNK-history"
HISTORY = [(dt.date(2025, 11, 1), 20.0, "generator"), (dt.date(2025, 12, 1), 26.0, "generator"),
           (AS_OF, 26.0, "generator"), (AS_OF, 26.0, "aaa-ingest"), (NEXT, 31.0, "generator")]


@pytest.fixture(scope="module")
def boundary(spark):
    """One build over every boundary case: (features by case, the rejected count, the features schema).

    Besides the cases, one member has loads before and after AS_OF (and two sources on AS_OF).
    """
    silver = silver_rows(spark, [overrides for _, _, overrides in CASES])
    for day, bmi, source in HISTORY:
        silver = silver.unionByName(silver_rows(spark, [{
            "patient_natural_key": HISTORY_KEY, "bmi": bmi, "source": source,
            "annual_charges": 1000.0 * day.month + len(source)}], day))
    features, rejected = build_features(build_dim_patients(silver), silver, AS_OF)
    frame = features.toPandas().sort_values("patient_natural_key").reset_index(drop=True)
    frame.index = pd.MultiIndex.from_tuples([(kind, str(value)) for kind, value, _ in CASES] + [("history", "")])
    return frame, rejected.count(), features.schema, tuple(rejected.columns)


def test_the_version_in_force_on_the_as_of_date_gives_attributes_and_scd_version(boundary):
    row = boundary[0].loc[("history", "")]
    assert row.patient_natural_key == HISTORY_KEY
    # 20 (v1) -> 26 (v2, in force on AS_OF; the same bmi from a second source opens no version) -> 31 (v3)
    assert (row.bmi, row.scd_version) == (26.0, 2)
    assert row[LABEL_COLUMN] == 1000.0 + len("generator")   # the last source's row of AS_OF's load


def test_output_has_exactly_the_contract_columns_and_types(boundary):
    frame, rejected, schema, rejected_columns = boundary
    assert rejected == 0 and len(frame) == len(CASES) + 1
    assert tuple(schema.names) == FEATURE_COLUMNS
    assert ", ".join(f"{f.name} {f.dataType.simpleString().upper()}" for f in schema.fields) == FEATURE_SCHEMA_DDL
    assert rejected_columns == QUARANTINE_COLUMNS


def test_feature_formulas_at_every_category_boundary(boundary):
    frame = boundary[0]
    for age, (age_band, score) in AGE_CASES.items():
        row = frame.loc[("age", str(age))]
        assert (row.age, row.age_band, row.age_risk_score) == (min(age, 90), age_band, score), age
    for bmi, category in BMI_CASES.items():
        row = frame.loc[("bmi", str(bmi))]
        assert (row.bmi, row.bmi_category) == (bmi, category), bmi
    for children, category in CHILDREN_CASES.items():
        row = frame.loc[("children", str(children))]
        assert (row.children, row.family_size_category) == (children, category), children
    for case, expected in SMOKER_OBESE_CASES.items():
        row = frame.loc[("smoker_obese", str(case))]
        assert (row.smoker, row.smoker_obese) == (case[0], expected), case


def test_boundary_rows_agree_with_the_pandas_engineer_features(boundary):
    frame = boundary[0]
    pandas_side = engineer_features(frame[FEATURE_INPUTS])
    for column in ("age", "age_risk_score", "smoker_obese"):
        np.testing.assert_array_equal(pandas_side[column].to_numpy(float), frame[column].to_numpy(float))
    for column in ("bmi_category", "family_size_category"):
        assert list(pandas_side[column]) == list(frame[column]), column


def test_age_in_whole_years_from_date_of_birth_and_safe_harbor_cap(boundary):
    frame = boundary[0]
    for dob, age in DOB_CASES.items():
        assert frame.loc[("dob", str(dob)), "age"] == age, dob
    assert frame["age"].max() == 90


def test_zip3_cut_restricted_prefixes_000_and_null_without_zip(boundary):
    frame = boundary[0]
    for zip_code, zip3 in ZIP_CASES.items():
        value = frame.loc[("zip", str(zip_code)), "zip3"]
        assert (None if pd.isna(value) else value) == zip3, zip_code


def test_spark_band_chain_equals_the_pandas_definition_everywhere(spark):
    bmi = np.round(np.arange(100, 800) / 10.0 - 0.01, 2)          # 9.99 .. 79.89, every boundary +-0.01
    ages = np.arange(0, 121)
    children = np.arange(0, 11)
    frame = spark.createDataFrame(pd.DataFrame({"v": np.concatenate([bmi, ages, children]).astype(float)}))
    out = frame.select("v", band_column(F.col("v"), BMI_CATEGORIES).alias("bmi"),
                       band_column(F.col("v"), AGE_BANDS).alias("age"),
                       band_column(F.col("v"), [(lo, i) for i, (lo, _) in enumerate(AGE_BANDS, 1)]).alias("score"),
                       band_column(F.col("v"), FAMILY_SIZE_CATEGORIES).alias("family")).toPandas()
    assert list(out["bmi"]) == list(band(out["v"], BMI_CATEGORIES))
    assert list(out["age"]) == list(band(out["v"], AGE_BANDS))
    assert list(out["score"]) == list(age_risk_score(out["v"]))
    assert list(out["family"]) == list(band(out["v"], FAMILY_SIZE_CATEGORIES))
    assert spark.range(1).select(band_column(F.lit(None).cast("double"), BMI_CATEGORIES)).first()[0] is None


def test_spark_job_and_engineer_features_agree_on_generated_members(generated_features):
    features, _ = generated_features
    pandas_side = engineer_features(features[FEATURE_INPUTS])
    for column in ("age_risk_score", "smoker_obese", "age", "bmi", "children"):
        np.testing.assert_array_equal(pandas_side[column].to_numpy(float), features[column].to_numpy(float))
    for column in ("bmi_category", "family_size_category"):
        assert list(pandas_side[column]) == list(features[column]), column
    assert list(band(features["age"], AGE_BANDS)) == list(features["age_band"])


# ----------------------------------------------------------------------------- de-identification

def test_output_holds_no_identifier_in_column_names_or_values(generated, generated_features):
    silver, _ = generated
    features, rejected = generated_features
    assert rejected == 0 and len(features) == MEMBERS
    assert not [c for c in features.columns if IDENTIFIER_COLUMN.search(c)]
    source = silver.select("ssn", "member_id", "zip_code", "first_name", "last_name",
                           F.col("date_of_birth").cast("string").alias("dob"),
                           F.col("enrollment_date").cast("string").alias("enrolled")).toPandas()
    identifiers = set().union(*[set(source[c].dropna()) for c in source.columns]) - {AS_OF.isoformat()}
    cells = features.astype(str).to_numpy().ravel()
    assert not identifiers.intersection(cells)
    for value in cells:
        assert not SSN.search(value) and not MEMBER_ID.search(value), value
        assert not NAME.search(value), value
        assert all(date == AS_OF.isoformat() for date in ISO_DATE.findall(value)), value
    for column in features.columns:
        if features[column].dtype == object:
            assert not features[column].astype(str).str.contains(ZIP5).any(), column
    assert features["age"].max() <= 90
    keys = member_keys(silver.select("patient_natural_key", "member_id").toPandas())
    assert personal_data(features, ML_INSURANCE_FEATURES, keys, key_column=MEMBER_KEY) == []


def test_zip3_is_the_first_three_digits_with_restricted_prefixes_as_000(generated, generated_features):
    silver, _ = generated
    features, _ = generated_features
    zips = silver.where(F.col("as_of_date") == AS_OF).select("patient_natural_key", "zip_code") \
        .toPandas().set_index("patient_natural_key")
    expected = [deidentified_zip3(z) for z in zips.loc[features["patient_natural_key"], "zip_code"]]
    assert list(features["zip3"]) == expected
    assert not set(features["zip3"]) & RESTRICTED_ZIP3
    assert "000" in set(features["zip3"])            # the generator draws restricted prefixes
    assert features["zip3"].str.fullmatch(r"\d{3}").all()


# ----------------------------------------------------------------------------- leakage

def test_no_feature_is_computed_from_annual_charges(generated, generated_features):
    silver, _ = generated
    base, _ = generated_features
    key_hash = F.abs(F.hash("patient_natural_key"))
    charges = F.col("annual_charges")
    altered = silver.withColumn(                        # known -> unknown or scrambled, unknown -> known
        "annual_charges", F.when(charges.isNull(), F.lit(777.0) + key_hash % 1000)
        .when(key_hash % 5 == 0, F.lit(None).cast("double"))
        .otherwise(F.lit(1e6) - charges * 3 - key_hash % 997))
    changed = sorted_frame(build_features(build_dim_patients(altered), altered, AS_OF)[0])
    assert len(base) == len(changed) == MEMBERS
    features_only = [c for c in FEATURE_COLUMNS if c != LABEL_COLUMN]
    pd.testing.assert_frame_equal(base[features_only], changed[features_only])
    differs = ~np.isclose(base[LABEL_COLUMN].fillna(-1), changed[LABEL_COLUMN].fillna(-1))
    assert differs.all()


# ----------------------------------------------------------------------------- the task

def test_rerun_of_a_date_replaces_that_date_only(loaded):
    first = feature_engineering.run(build_runtime(loaded), AS_OF)
    second = feature_engineering.run(build_runtime(loaded), None)      # no date: the latest load
    assert first["delivered"] == first["features"] + first["quarantined"] == MEMBERS
    assert second["as_of_date"] == NEXT.isoformat()
    assert second["delivered"] == MEMBERS + JOINERS == second["features"] + second["quarantined"]
    before = read_local(loaded, ML_INSURANCE_FEATURES)
    version = DeltaCatalog(loaded).version(ML_INSURANCE_FEATURES)

    again = feature_engineering.run(build_runtime(loaded), "2026-01-01")
    after = read_local(loaded, ML_INSURANCE_FEATURES)
    assert again == first
    assert DeltaCatalog(loaded).version(ML_INSURANCE_FEATURES) == version + 1
    assert after.groupby("as_of_date").size().to_dict() == before.groupby("as_of_date").size().to_dict()
    untouched = [frame[frame["as_of_date"] == NEXT].sort_values("patient_natural_key").reset_index(drop=True)
                 for frame in (before, after)]
    pd.testing.assert_frame_equal(*untouched)
    # The label is null where charges are not known yet (members who joined in the latest period).
    assert after[LABEL_COLUMN].isna().any() and after[LABEL_COLUMN].notna().mean() > 0.8


def test_as_of_parsing():
    assert parse_optional_date(None) is None and parse_optional_date("") is None
    assert parse_optional_date(" 2026-01-01") == AS_OF == parse_optional_date(AS_OF)
    assert feature_engineering.resolve_load_date([AS_OF, NEXT], None) == NEXT
    with pytest.raises(UserError, match="holds no loads yet"):
        feature_engineering.resolve_load_date([], None)


def test_a_clear_error_for_a_date_without_a_load(loaded):
    with pytest.raises(UserError, match=r"no silver_patients load on as-of date 2026-03-01.*latest load is 2026-02-01"):
        feature_engineering.run(build_runtime(loaded), dt.date(2026, 3, 1))
    with pytest.raises(UserError, match="YYYY-MM-DD"):
        feature_engineering.run(build_runtime(loaded), "2026-02-30")


def test_missing_tables_give_a_user_error(spark, settings):
    with pytest.raises(UserError, match="silver_patients does not exist yet"):
        feature_engineering.run(build_runtime(settings), AS_OF)


def test_entry_point_reports_a_user_error_in_one_line(loaded, monkeypatch, capsys):
    monkeypatch.setenv("HEALTHCARE_MLOPS_HOME", str(loaded.home))
    args = ["--target", "local", "--catalog", loaded.catalog, "--schema", loaded.schema, "--as_of", "2025-06-01"]
    with pytest.raises(SystemExit) as exit_info:
        entrypoint.main(lambda params, runtime: feature_engineering.run(runtime, params.get("as_of") or None), args)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no silver_patients load on as-of date 2025-06-01") and "\n" not in err

    def failing(params, runtime):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):     # anything else is not disguised as a user error
        entrypoint.main(failing, args)


def test_job_script_as_a_subprocess(loaded):
    env = {**os.environ, "HEALTHCARE_MLOPS_HOME": str(loaded.home)}
    base = [sys.executable, str(REPO / "jobs" / "feature_engineering.py"),
            "--target", "local", "--catalog", loaded.catalog, "--schema", loaded.schema]
    bad = subprocess.run(base + ["--as_of", "2026-13-01"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith("error: as-of date must be YYYY-MM-DD")
    assert "Traceback" not in bad.stderr
    missing = subprocess.run(base[:-2], env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "error: missing task parameters: --schema" in missing.stderr

    ok = subprocess.run(base + ["--as_of", AS_OF.isoformat()], env=env, capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert f"feature_engineering as of 2026-01-01: delivered {MEMBERS}" in ok.stdout


# ----------------------------------------------------------------------------- quarantine

BROKEN = {
    "PNK-000000010": ({"bmi": None}, "bmi", "missing value"),
    "PNK-000000011": ({"bmi": float("nan")}, "bmi", "not a finite number"),
    "PNK-000000012": ({"bmi": 5.0}, "bmi", "bmi outside 10.0-80.0: 5.0"),
    "PNK-000000013": ({"children": 11}, "children", "children outside 0-10: 11"),
    "PNK-000000014": ({"children": None}, "children", "missing value"),
    "PNK-000000015": ({"smoker": None}, "smoker", "missing value"),
    "PNK-000000016": ({"region": "atlantis"}, "region", "'atlantis' is not one of"),
    "PNK-000000017": ({"region": None}, "region", "missing value"),
    "PNK-000000018": ({"age": None}, "age", "missing value"),
    "PNK-000000019": ({"date_of_birth": dt.date(1924, 5, 5)}, "age", "outside 18-100: 90+"),
    "PNK-000000020": ({"date_of_birth": dt.date(2012, 5, 5)}, "age", "outside 18-100: 13"),
    "PNK-000000021": ({}, "patient_natural_key", "no dim_patients version in force on 2026-01-01"),
}


def test_unfeaturizable_rows_are_quarantined_and_counts_reconcile(spark, settings):
    good = [{"date_of_birth": dt.date(1980 + i, 1 + i % 12, 1 + i)} for i in range(10)]
    silver = silver_rows(spark, good + [case[0] for case in BROKEN.values()])
    # A member in dim but not delivered on AS_OF, and a member delivered by two sources.
    earlier = silver_rows(spark, [{}] * 23, dt.date(2025, 12, 1)).where(F.col("source_row") == 22)
    silver = silver.unionByName(earlier).unionByName(
        silver_rows(spark, [{}] * 24).where(F.col("source_row") == 0).withColumn("source", F.lit("zz-ingest")))
    dim = build_dim_patients(silver).where(F.col("patient_natural_key") != "PNK-000000021")
    table_catalog(settings, spark).write(silver, SILVER_PATIENTS, mode="overwrite", partition_by=["as_of_date"])
    table_catalog(settings, spark).write(dim, DIM_PATIENTS, mode="overwrite")
    generate_stage = silver_rows(spark, [{}]).select(
        F.lit("generate").alias("stage"), "source", "source_row", F.col("patient_natural_key").alias("record_key"),
        F.lit("bmi").alias("column_name"), F.lit("earlier stage").alias("reason"), F.lit("{}").alias("raw_record"),
        "as_of_date")
    table_catalog(settings, spark).write(generate_stage, DATA_QUALITY_QUARANTINE, mode="overwrite",
                                         partition_by=["as_of_date"])

    result = feature_engineering.run(build_runtime(settings), AS_OF)
    assert result["delivered"] == 22 == result["features"] + result["quarantined"]
    assert (result["features"], result["quarantined"]) == (10, 12)
    rerun = feature_engineering.run(build_runtime(settings), AS_OF)
    assert rerun == result

    quarantine = read_local(settings, DATA_QUALITY_QUARANTINE)
    assert list(quarantine.columns) == list(QUARANTINE_COLUMNS)
    assert (quarantine["stage"] == "generate").sum() == 1            # another stage's rows untouched
    ours = quarantine[quarantine["stage"] == "feature_engineering"].set_index("record_key")
    assert set(ours.index) == set(BROKEN) and len(ours) == len(BROKEN)
    assert (ours["source"] == "dim_patients").all() and ours["source_row"].isna().all()
    assert (ours["as_of_date"] == AS_OF).all()
    for key, (_, column, reason) in BROKEN.items():
        assert ours.loc[key, "column_name"] == column, key
        assert reason in ours.loc[key, "reason"], (key, ours.loc[key, "reason"])
        record = json.loads(ours.loc[key, "raw_record"])
        assert set(record) <= set(QUARANTINE_RECORD), record
    assert "101" not in ours.loc["PNK-000000019", "reason"]
    assert json.loads(ours.loc["PNK-000000019", "raw_record"])["age"] == 90
    # No PII in this stage's quarantine rows.
    cells = ours.reset_index().drop(columns="record_key").astype(str).to_numpy().ravel()
    for value in cells:
        assert not SSN.search(value) and not MEMBER_ID.search(value) and not NAME.search(value), value
        assert not ZIP5.search(value), value
        assert all(date == AS_OF.isoformat() for date in ISO_DATE.findall(value)), value
    features = read_local(settings, ML_INSURANCE_FEATURES)
    assert len(features) == 10 and not set(features["patient_natural_key"]) & set(BROKEN)
