"""Later loads: dim_patients as a true SCD2 over three as-of dates, idempotent reruns, scenarios.

One home receives a baseline population (D1), a later baseline load (D2) and a
``smoker_surge`` load (D3), all through ``generate_patients`` (Spark, validation, Delta).
The invariants are checked against what the silver loads say, computed independently in
pandas. The scenarios are then generated for D2 from the same D1 population and their
shifts measured against the D1 load.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from healthcare_mlops.composition import build_runtime, cli_runtime
from healthcare_mlops.data.contract import DIM_ATTRIBUTE_COLUMNS, SCD2_TRACKED, SILVER_COLUMNS
from healthcare_mlops.data.scenarios import AGING_MIN_AGE, SCENARIOS, get_scenario
from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tables import DIM_PATIENTS, SILVER_PATIENTS

SEED = 5
D1, D2, D3 = dt.date(2024, 1, 1), dt.date(2024, 4, 1), dt.date(2024, 7, 1)
POPULATION, JOINERS = 4_000, 400
KEY = "patient_natural_key"
IDENTITY = ("member_id", "first_name", "last_name", "ssn", "date_of_birth", "sex", "enrollment_date")


def read(settings, name: str) -> pd.DataFrame:
    frame = DeltaCatalog(settings).read_arrow(name).to_pandas()
    key = [KEY, "scd_version"] if name == DIM_PATIENTS else [KEY, "as_of_date"]
    return frame.sort_values(key).reset_index(drop=True)


@pytest.fixture(scope="module")
def history(spark, tmp_path_factory):
    """Snapshots of silver and dim after each load, then after rerunning D3 and D2."""
    from healthcare_mlops.tasks.load_members import generate_patients

    settings = resolve_settings("local", tmp_path_factory.mktemp("scd2"))
    snapshots = {}
    for label, day, count, scenario in [("d1", D1, POPULATION, "baseline"), ("d2", D2, JOINERS, "baseline"),
                                        ("d3", D3, JOINERS, "smoker_surge"),
                                        ("rerun_d3", D3, JOINERS, "smoker_surge"),
                                        ("rerun_d2", D2, JOINERS, "baseline")]:
        report = generate_patients(cli_runtime(settings), count, SEED, day, scenario)
        snapshots[label] = {"report": report, "silver": read(settings, SILVER_PATIENTS),
                            "dim": read(settings, DIM_PATIENTS),
                            "silver_version": DeltaCatalog(settings).version(SILVER_PATIENTS)}
    return snapshots


@pytest.fixture(scope="module")
def silver(history) -> pd.DataFrame:
    return history["d3"]["silver"]


@pytest.fixture(scope="module")
def dim(history) -> pd.DataFrame:
    return history["d3"]["dim"]


def load(silver: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return silver[silver["as_of_date"] == day].set_index(KEY)


def changed_members(silver: pd.DataFrame, before: dt.date, after: dt.date) -> set[str]:
    """Members in both loads whose tracked attributes differ (computed without Spark)."""
    a, b = load(silver, before), load(silver, after)
    common = a.index.intersection(b.index)
    differs = (a.loc[common, list(SCD2_TRACKED)] != b.loc[common, list(SCD2_TRACKED)]).any(axis=1)
    return set(common[differs])


# --- the loads ---------------------------------------------------------------------------------

def test_reports_count_rows_and_members(history):
    expected = {"d1": POPULATION, "d2": POPULATION + JOINERS, "d3": POPULATION + 2 * JOINERS}
    for label, rows in expected.items():
        report, dim = history[label]["report"], history[label]["dim"]
        assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (rows, rows, 0)
        assert report.current_members == rows == dim[KEY].nunique()
        assert report.dim_versions == len(dim)


def test_no_member_is_duplicated_in_a_load(silver):
    assert list(silver.columns) == list(SILVER_COLUMNS)
    assert sorted(silver["as_of_date"].unique()) == [D1, D2, D3]
    assert not silver.duplicated([KEY, "as_of_date"]).any()
    assert not silver.duplicated(["member_id", "as_of_date"]).any()


def test_later_loads_carry_every_member_and_add_new_ones(silver):
    d1, d2, d3 = (load(silver, day) for day in (D1, D2, D3))
    assert len(d1) == POPULATION and len(d2) == len(d3) - JOINERS == POPULATION + JOINERS
    assert set(d1.index) < set(d2.index) < set(d3.index)
    # New members continue the key sequence.
    assert sorted(set(d2.index) - set(d1.index)) == [f"PNK-{i:09d}" for i in range(4_000, 4_400)]
    assert sorted(set(d3.index) - set(d2.index)) == [f"PNK-{i:09d}" for i in range(4_400, 4_800)]
    # Joiners enrolled during the period since the previous load.
    joined = d3.loc[sorted(set(d3.index) - set(d2.index)), "enrollment_date"]
    assert joined.between(D2 + dt.timedelta(days=1), D3).all()


def test_identity_is_stable_and_members_age(silver):
    d1, d3 = load(silver, D1), load(silver, D3)
    common = d1.index
    pd.testing.assert_frame_equal(d1.loc[common, list(IDENTITY)], d3.loc[common, list(IDENTITY)])
    aged = d3.loc[common, "age"] - d1.loc[common, "age"]
    assert set(aged) <= {0, 1} and 0.3 < aged.mean() < 0.7     # half a year later


# --- SCD2 invariants ------------------------------------------------------------------------------

def test_exactly_one_current_row_per_member(dim, silver):
    assert set(dim[KEY]) == set(silver[KEY])
    assert (dim.groupby(KEY)["is_current_record"].sum() == 1).all()
    assert (dim["is_current_record"] == dim["effective_to"].isna()).all()


def test_versions_are_numbered_and_contiguous(dim):
    assert not dim.duplicated([KEY, "scd_version"]).any()
    for key, versions in dim.groupby(KEY):
        versions = versions.sort_values("scd_version")
        assert list(versions["scd_version"]) == list(range(1, len(versions) + 1)), key
        assert list(versions["effective_to"].iloc[:-1]) == list(versions["effective_from"].iloc[1:]), key
        assert versions["effective_from"].is_monotonic_increasing and versions["effective_from"].is_unique
        assert versions["is_current_record"].tolist() == [False] * (len(versions) - 1) + [True]


def test_a_version_opens_exactly_when_a_tracked_attribute_changes(dim, silver):
    for before, after in ((D1, D2), (D2, D3)):
        opened = set(dim.loc[(dim["effective_from"] == after) & (dim["scd_version"] > 1), KEY])
        assert opened == changed_members(silver, before, after), after
    # Baseline churn re-measures about 2 % (bmi); the smoker surge flips about 19 %.
    assert 0.01 <= len(changed_members(silver, D1, D2)) / POPULATION <= 0.03
    assert len(changed_members(silver, D2, D3)) / (POPULATION + JOINERS) > 0.15
    assert dim.groupby(KEY)["scd_version"].max().max() >= 3


def test_each_version_holds_the_load_it_starts_with(dim, silver):
    rows = silver.set_index([KEY, "as_of_date"])
    starts = rows.loc[list(zip(dim[KEY], dim["effective_from"])), list(DIM_ATTRIBUTE_COLUMNS[1:])]
    pd.testing.assert_frame_equal(starts.reset_index(drop=True),
                                  dim[list(DIM_ATTRIBUTE_COLUMNS[1:])].reset_index(drop=True),
                                  check_dtype=False)
    # The current version's tracked attributes are the member's latest load.
    latest = silver.sort_values("as_of_date").groupby(KEY).last()
    current = dim[dim["is_current_record"]].set_index(KEY).loc[latest.index]
    pd.testing.assert_frame_equal(current[list(SCD2_TRACKED)], latest[list(SCD2_TRACKED)], check_dtype=False)


def test_members_who_joined_last_period_get_charges_next_load(silver):
    d1, d2, d3 = (load(silver, day) for day in (D1, D2, D3))
    joined_d2 = d2.index.difference(d1.index)
    joined_d3 = d3.index.difference(d2.index)
    assert d2.loc[joined_d2, "annual_charges"].isna().all()
    assert d3.loc[joined_d2, "annual_charges"].notna().all()
    assert d3.loc[joined_d3, "annual_charges"].isna().all()
    # In the first load, the members who enrolled in its last 30 days had none either.
    recent_d1 = d1.index[d1["annual_charges"].isna()]
    assert 0.03 <= len(recent_d1) / POPULATION <= 0.07
    assert d2.loc[recent_d1, "annual_charges"].notna().all()
    # Everyone else has a label in every load.
    assert d2.drop(joined_d2)["annual_charges"].notna().all()
    assert d3.drop(joined_d3)["annual_charges"].notna().all()


# --- idempotency --------------------------------------------------------------------------------

@pytest.mark.parametrize("rerun", ["rerun_d3", "rerun_d2"])
def test_rerunning_a_date_changes_nothing(history, rerun):
    """Rerunning the latest date (a retried job) or an earlier one (a backfill)."""
    final = history["d3"]
    again = history[rerun]
    assert again["silver_version"] > final["silver_version"]          # it did write
    pd.testing.assert_frame_equal(again["silver"], final["silver"])
    pd.testing.assert_frame_equal(again["dim"], final["dim"])
    assert again["report"].current_members == final["report"].current_members


# --- scenarios ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scenario_loads(spark, history) -> dict[str, pd.DataFrame]:
    """Each scenario's D2 load generated from the D1 population (the state before D2)."""
    from healthcare_mlops.spark.generator import generate_load
    from healthcare_mlops.spark.scd2 import state_before

    dim_d1 = spark.createDataFrame(history["d1"]["dim"]).cache()
    existing = state_before(dim_d1, D2)
    loads = {}
    for name, scenario in SCENARIOS.items():
        frame = generate_load(spark, SEED, D2, JOINERS, scenario.shape, existing, previous_as_of=D1).toPandas()
        loads[name] = frame.set_index(KEY).sort_index()
    dim_d1.unpersist()
    return loads


@pytest.fixture(scope="module")
def reference(history) -> pd.DataFrame:
    return load(history["d1"]["silver"], D1)


def test_scenario_list():
    assert set(SCENARIOS) == {"baseline", "smoker_surge", "aging", "region_shift", "bmi_drift",
                              "cost_inflation", "low_volume"}
    with pytest.raises(UserError, match="unknown scenario 'nope' \\(known: baseline, "):
        get_scenario("nope")


def test_the_baseline_load_is_what_the_pipeline_stored(scenario_loads, history):
    stored = load(history["d2"]["silver"], D2).sort_index()
    pd.testing.assert_frame_equal(scenario_loads["baseline"], stored, check_dtype=False)


def test_baseline_shifts_nothing_beyond_noise(scenario_loads, reference):
    now = scenario_loads["baseline"]
    assert len(now) == POPULATION + JOINERS
    assert abs(now["smoker"].mean() - reference["smoker"].mean()) <= 0.015
    assert abs((now["region"] == "northeast").mean() - (reference["region"] == "northeast").mean()) <= 0.015
    assert abs(now["age"].mean() - reference["age"].mean()) <= 0.75      # includes 3 months of ageing
    assert abs(now["bmi"].mean() - reference["bmi"].mean()) <= 0.2
    assert abs(now["annual_charges"].mean() / reference["annual_charges"].mean() - 1) <= 0.05


def test_smoker_surge(scenario_loads, reference):
    shift = scenario_loads["smoker_surge"]["smoker"].mean() - reference["smoker"].mean()
    assert abs(shift - 0.15) <= 0.03, shift
    # Nobody stops smoking; non-smokers take it up.
    existing = reference.index
    assert (scenario_loads["smoker_surge"].loc[existing, "smoker"] >= reference["smoker"]).all()


def test_aging(scenario_loads, reference):
    now = scenario_loads["aging"]
    shift = now["age"].mean() - reference["age"].mean()
    assert abs(shift - 8) <= 1.5, shift
    assert now["age"].min() >= AGING_MIN_AGE
    assert now.index.difference(reference.index).size == JOINERS


def test_region_shift(scenario_loads, reference):
    now = scenario_loads["region_shift"]
    shift = (now["region"] == "northeast").mean() - (reference["region"] == "northeast").mean()
    assert abs(shift - 0.15) <= 0.03, shift
    # A move changes the ZIP code to one of the new region's.
    moved = reference.index[(reference["region"] != "northeast")
                            & (now.loc[reference.index, "region"] == "northeast")]
    assert len(moved) > 0.1 * POPULATION
    assert (now.loc[moved, "zip_code"] != reference.loc[moved, "zip_code"]).all()


def test_bmi_drift(scenario_loads, reference):
    shift = scenario_loads["bmi_drift"]["bmi"].mean() - reference["bmi"].mean()
    assert abs(shift - 3) <= 0.5, shift


def test_cost_inflation_raises_charges_with_features_unchanged(scenario_loads):
    base, inflated = scenario_loads["baseline"], scenario_loads["cost_inflation"]
    features = [c for c in base.columns if c != "annual_charges"]
    pd.testing.assert_frame_equal(inflated[features], base[features])
    assert (inflated["annual_charges"].isna() == base["annual_charges"].isna()).all()
    ratio = (inflated["annual_charges"] / base["annual_charges"]).dropna()
    assert len(ratio) > 0.8 * len(base)
    assert ((ratio - 1.25).abs() < 1e-3).all(), ratio.describe()


def test_low_volume_delivers_exactly_30_existing_members(scenario_loads, reference):
    now = scenario_loads["low_volume"]
    assert len(now) == 30
    assert set(now.index) <= set(reference.index)      # an outage: no new members either


# --- member files with ids: one key per member across files, a version per change ----------------

MEMBERS, CHANGED = 500, 50


def member_file(path, bmi_shift: dict[int, float], shuffle_seed: int, id_column: str = "member_id"):
    """``MEMBERS`` members with ids, in a shuffled order; member i's BMI moved by ``bmi_shift[i]``."""
    import random

    rows = [f"M{i:07d},{18 + i % 60},{'female' if i % 2 else 'male'},{25 + i % 20 + bmi_shift.get(i, 0.0):.1f},"
            f"{i % 4},{'yes' if i % 5 == 0 else 'no'},southwest,{2000 + i}" for i in range(MEMBERS)]
    random.Random(shuffle_seed).shuffle(rows)
    path.write_text("\n".join([f"{id_column},age,sex,bmi,children,smoker,region,charges", *rows]) + "\n")
    return path


def test_two_monthly_files_with_member_ids_give_one_key_per_member_and_a_version_per_change(spark, tmp_path):
    from healthcare_mlops.tasks import feature_engineering
    from healthcare_mlops.tasks.load_members import ingest_csv

    settings = resolve_settings("local", tmp_path / "home")
    catalog = DeltaCatalog(settings)
    january = ingest_csv(cli_runtime(settings), member_file(tmp_path / "members_2024_01.csv", {}, 1), D1)
    dim_before = catalog.version(DIM_PATIENTS)
    changed = {i: 1.5 for i in range(0, 2 * CHANGED, 2)}
    february = ingest_csv(cli_runtime(settings), member_file(tmp_path / "members_2024_02.csv", changed, 2), D2)
    assert (january.rows_loaded, february.rows_loaded) == (MEMBERS, MEMBERS)

    dim = read(settings, DIM_PATIENTS)
    assert (len(dim), dim[KEY].nunique(), int(dim["is_current_record"].sum())) == \
        (MEMBERS + CHANGED, MEMBERS, MEMBERS)
    assert (february.dim_versions, february.current_members) == (MEMBERS + CHANGED, MEMBERS)
    opened = dim[dim["effective_from"] == D2]
    assert sorted(opened["member_id"]) == sorted(f"M{i:07d}" for i in changed)
    assert (opened["scd_version"] == 2).all() and opened["is_current_record"].all()
    closed = dim[dim[KEY].isin(opened[KEY]) & (dim["scd_version"] == 1)]
    assert (closed["effective_to"] == D2).all() and not closed["is_current_record"].any()
    assert all(key.startswith("MBR-") and "M0" not in key for key in dim[KEY])
    # Merged, not rebuilt: the load appended its 50 versions and rewrote only January's partition.
    commits = catalog.delta_table(DIM_PATIENTS).history(catalog.version(DIM_PATIENTS) - dim_before)
    assert [c["operationParameters"].get("mode") for c in commits][::-1] == ["Append", "Overwrite"]
    assert "effective_from" in commits[0]["operationParameters"].get("predicate", "")

    feature_engineering.run(build_runtime(settings), D2)        # the ids stay behind the feature step
    features = catalog.read_arrow("ml_insurance_features").to_pandas()
    assert "member_id" not in features.columns
    assert not features.astype(str).isin(set(dim["member_id"])).any().any()


def test_the_member_id_column_name_is_configurable_and_ids_are_required(spark, tmp_path):
    from healthcare_mlops.tasks.load_members import ingest_csv

    settings = resolve_settings("local", tmp_path / "home")
    path = member_file(tmp_path / "members.csv", {}, 3, id_column="MemberNo")
    with pytest.raises(UserError, match=r"unknown column 'memberno'"):
        ingest_csv(cli_runtime(settings), path, D1)
    lines = path.read_text().splitlines()
    lines[1] = "," + lines[1].split(",", 1)[1]                       # a row without its id
    lines.append(lines[2])                                           # the same id twice
    path.write_text("\n".join(lines) + "\n")
    report = ingest_csv(cli_runtime(settings), path, D1, id_column="memberno")
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (MEMBERS + 1, MEMBERS - 1, 2)
    quarantine = DeltaCatalog(settings).read_arrow("data_quality_quarantine").to_pandas()
    reasons = quarantine["reason"].str.replace(r" \d+$", "", regex=True)
    assert sorted(reasons) == ["duplicate of source row", "missing value"]
    assert sorted(quarantine["column_name"]) == ["member_id", "memberno"]
