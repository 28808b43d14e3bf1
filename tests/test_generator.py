"""The synthetic member generator: realistic statistics, real-looking identifiers, determinism.

Statistics are checked on one 20,000-member load written through the real path
(``generate_patients``: Spark, validation, Delta) against the public insurance-charges
table (docs/definitions.md (the public table)). Each tolerance is stated next to its check and is the sum of

* the sampling error of 20,000 rows, at about 4 standard errors (so a correct generator
  fails about once in 15,000 runs per check; the seed is fixed, so in practice never), and
* for the charge statistics, the sampling error of the public table itself (1,338 rows:
  its mean is known to about +-2.5 %, its median and p95 to about +-3-4 %) plus what the
  generator's parametric form does not reproduce exactly (noted where it matters).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from healthcare_mlops.composition import cli_runtime
from healthcare_mlops.data import population as pop
from healthcare_mlops.data.contract import REGIONS, SILVER_COLUMNS
from healthcare_mlops.data.population import Shape
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, DIM_PATIENTS, SILVER_PATIENTS

N = 20_000
SEED = 2024
AS_OF = dt.date(2025, 1, 1)
SORT_KEY = ["patient_natural_key", "as_of_date"]


def sorted_frame(frame: pd.DataFrame, key=SORT_KEY) -> pd.DataFrame:
    return frame.sort_values(key).reset_index(drop=True)


def read(settings, name: str) -> pd.DataFrame:
    return DeltaCatalog(settings).read_arrow(name).to_pandas()


def se_share(p: float, n: int = N) -> float:
    return math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def generated(spark, tmp_path_factory):
    from healthcare_mlops.tasks.load_members import generate_patients

    settings = resolve_settings("local", tmp_path_factory.mktemp("generated"))
    report = generate_patients(cli_runtime(settings), N, SEED, AS_OF)
    return settings, report, read(settings, SILVER_PATIENTS)


@pytest.fixture(scope="module")
def members(generated) -> pd.DataFrame:
    return generated[2]


@pytest.fixture(scope="module")
def charged(members) -> pd.DataFrame:
    """Members with a label (those who enrolled in the last 30 days have none yet)."""
    return members.dropna(subset=["annual_charges"])


# --- the load itself -----------------------------------------------------------------------

def test_load_report_and_tables(generated):
    settings, report, members = generated
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (N, N, 0)
    assert (report.current_members, report.dim_versions) == (N, N)
    assert list(members.columns) == list(SILVER_COLUMNS)
    assert len(members) == N and members["patient_natural_key"].is_unique
    assert set(members["as_of_date"]) == {AS_OF} and set(members["source"]) == {"generator"}
    assert len(read(settings, DATA_QUALITY_QUARANTINE)) == 0
    dim = read(settings, DIM_PATIENTS)
    assert len(dim) == N and dim["is_current_record"].all() and (dim["scd_version"] == 1).all()


def test_every_value_is_in_the_contract(members):
    assert members[["patient_natural_key", "member_id", "first_name", "last_name", "ssn", "date_of_birth",
                    "zip_code", "sex", "age", "bmi", "children", "smoker", "region",
                    "enrollment_date"]].notna().all().all()
    assert members["age"].between(18, 64).all()
    assert members["bmi"].between(*pop.BMI_CLIP).all()
    assert set(members["sex"]) == {"female", "male"}
    assert set(members["region"]) == set(REGIONS)
    assert set(members["children"]) == set(range(6))
    assert (members["annual_charges"].dropna() >= pop.CHARGE_FLOOR).all()


# --- marginals (docs/definitions.md (the public table)) --------------------------------------------------------

def test_age(members):
    age = members["age"]
    # Public table: mean 39.2, sd 14.0, 18-64, close to uniform with extra 18-19 year-olds
    # (10.2 %). The generator's form (10 % at 18-19, uniform 20-64) has mean 39.65 by
    # construction; SE of the mean at 20k is 0.10. Tolerance 0.8 = 0.45 (form) + 0.35.
    assert abs(age.mean() - 39.2) <= 0.8, age.mean()
    # SE of the sd at 20k is about 0.07; the form gives 14.2. Tolerance 0.5.
    assert abs(age.std() - 14.0) <= 0.5, age.std()
    assert (age.min(), age.max()) == (18, 64)
    assert abs(age.between(18, 19).mean() - 0.10) <= 4 * se_share(0.10)
    # Close to uniform over 20-64: every 5-year band holds 1/9 of those members (+-4 SE).
    main = age[age >= 20]
    bands = ((main - 20) // 5).value_counts(normalize=True)
    assert len(bands) == 9
    assert (bands - 1 / 9).abs().max() <= 4 * se_share(1 / 9, len(main)), bands.to_dict()


def test_sex(members):
    share = (members["sex"] == "female").mean()
    assert abs(share - 0.5) <= 4 * se_share(0.5), share       # +-0.014


def test_regions(members):
    shares = members["region"].value_counts(normalize=True)
    # Public table: southeast 27.2 %, the other three 24.2-24.3 %. +-4 SE = +-0.013.
    for region, expected in pop.REGION_SHARES.items():
        assert abs(shares[region] - expected) <= 4 * se_share(expected), (region, shares[region])
    assert abs(shares["southeast"] - 0.27) <= 0.013
    assert shares.idxmax() == "southeast"


def test_smokers(members):
    share = members["smoker"].mean()
    assert abs(share - 0.205) <= 4 * se_share(0.205), share  # +-0.011


def test_children(members):
    shares = members["children"].value_counts(normalize=True)
    for children, expected in enumerate((0.43, 0.24, 0.18, 0.12, 0.02, 0.01)):
        assert abs(shares.get(children, 0.0) - expected) <= 4 * se_share(expected), (children, shares.get(children))


def test_bmi(members):
    bmi = members["bmi"]
    # Public table: mean 30.7, sd 6.1, range 16-53. SE of the mean 0.04, of the sd 0.03;
    # clipping to 16-53 moves both by < 0.05. Tolerances 0.25 and 0.25.
    assert abs(bmi.mean() - 30.7) <= 0.25, bmi.mean()
    assert abs(bmi.std() - 6.1) <= 0.25, bmi.std()
    assert bmi.min() >= 16.0 and bmi.max() <= 53.0
    # Both ends of the range are reached: about 0.8 % of a normal(30.7, 6.1) lies under 16
    # (160 members clipped to 16), about 16 members lie above 50.
    assert bmi.min() == 16.0 and bmi.max() >= 50.0
    assert bmi.round(2).equals(bmi)


# --- annual charges ---------------------------------------------------------------------------

def test_charge_distribution(charged):
    charges = charged["annual_charges"]
    # Public table values; relative tolerances (reference error + 20k error + form).
    checks = {
        "median": (charges.median(), 9_382, 0.075),     # ref +-4 %, ours +-1 %
        "mean": (charges.mean(), 13_270, 0.05),         # ref +-2.5 %, ours +-0.7 %
        "p90": (charges.quantile(0.90), 34_832, 0.05),
        "p95": (charges.quantile(0.95), 41_182, 0.05),  # ref +-3 %, ours +-1 %
        "p99": (charges.quantile(0.99), 48_537, 0.06),
    }
    failures = {name: round(value) for name, (value, target, tol) in checks.items()
                if abs(value / target - 1) > tol}
    assert failures == {}, failures
    # Right-skewed: the mean sits well above the median.
    assert charges.mean() / charges.median() > 1.25


def test_smoker_and_non_smoker_charges(charged):
    smoker = charged["smoker"]
    non_smoker_mean = charged.loc[~smoker, "annual_charges"].mean()
    smoker_mean = charged.loc[smoker, "annual_charges"].mean()
    # Public table: non-smokers 8,434 (n=1,064, +-2 %), smokers 32,050 (n=274, +-3.5 %).
    assert abs(non_smoker_mean / 8_434 - 1) <= 0.05, non_smoker_mean
    assert abs(smoker_mean / 32_050 - 1) <= 0.06, smoker_mean


def test_charge_structure(charged):
    """Age slope, per-child cost, smoking x obesity interaction and the right-skewed residual."""
    frame = charged
    design = np.column_stack([
        np.ones(len(frame)), frame["age"], frame["children"],
        frame["smoker"] & (frame["bmi"] < pop.OBESE_BMI), frame["smoker"] & (frame["bmi"] >= pop.OBESE_BMI),
    ]).astype(float)
    coef, *_ = np.linalg.lstsq(design, frame["annual_charges"].to_numpy(), rcond=None)
    _, per_year, per_child, smoker_lean, smoker_obese = coef
    # Public table: about 265 per year of age, 500 per child; smokers +14,150 (bmi < 30)
    # and +32,850 (bmi >= 30) over non-smokers. SE of the slopes: about 5 and 60.
    assert abs(per_year - 265) <= 30, per_year
    assert abs(per_child - 500) <= 200, per_child
    assert abs(smoker_lean - 14_150) <= 1_500, smoker_lean
    assert abs(smoker_obese - 32_850) <= 1_500, smoker_obese
    residual = frame["annual_charges"] - design @ coef
    # Residual sd about 4,500 with about 6 % of members above +10,000 (the heavy tail).
    assert 3_500 <= residual.std() <= 5_500, residual.std()
    assert abs((residual > 10_000).mean() - 0.06) <= 0.02, (residual > 10_000).mean()
    assert residual.skew() > 1.5


def test_members_new_in_the_first_load_have_no_charges_yet(members):
    recent = members["enrollment_date"] > AS_OF - dt.timedelta(days=pop.FIRST_LOAD_NEW_MEMBER_DAYS)
    assert members.loc[recent, "annual_charges"].isna().all()
    assert members.loc[~recent, "annual_charges"].notna().all()
    assert abs(recent.mean() - pop.FIRST_LOAD_NEW_MEMBER_SHARE) <= 4 * se_share(pop.FIRST_LOAD_NEW_MEMBER_SHARE)
    assert (members["enrollment_date"] <= AS_OF).all()
    assert (members["enrollment_date"] > AS_OF - dt.timedelta(days=pop.MAX_TENURE_DAYS)).all()


# --- identifiers: present and well-formed, so that de-identification downstream is real ----------

def test_identifiers(members):
    assert members["patient_natural_key"].str.fullmatch(r"PNK-\d{9}").all()
    assert members["member_id"].str.fullmatch(r"M\d{10}").all()
    assert members["member_id"].nunique() >= N - 2          # 10^10 ids: collisions are rare
    assert members["ssn"].str.fullmatch(r"9\d\d-(0[1-9]|[1-9]\d)-(?!0000)\d{4}").all()
    assert members["first_name"].isin(pop.FIRST_NAMES).all()
    assert members["last_name"].isin(pop.LAST_NAMES).all()
    assert members["first_name"].nunique() == len(pop.FIRST_NAMES)
    # ZIP: 5 digits whose 3-digit prefix belongs to the member's region.
    assert members["zip_code"].str.fullmatch(r"\d{5}").all()
    prefix_ok = [zip_code[:3] in pop.ZIP3_BY_REGION[region]
                 for zip_code, region in zip(members["zip_code"], members["region"])]
    assert all(prefix_ok)
    assert members["zip_code"].nunique() > 1_000


def test_date_of_birth_gives_the_age(members):
    dob = pd.to_datetime(members["date_of_birth"])
    had_birthday = (dob.dt.month < AS_OF.month) | ((dob.dt.month == AS_OF.month) & (dob.dt.day <= AS_OF.day))
    age_from_dob = AS_OF.year - dob.dt.year - (~had_birthday).astype(int)
    assert (age_from_dob == members["age"]).all()
    assert dob.dt.dayofyear.nunique() > 300                    # birthdays spread over the year


# --- determinism ------------------------------------------------------------------------------

def test_same_seed_and_date_give_the_same_tables(spark, generated, tmp_path):
    """The whole write path again into another home: identical silver and dim tables."""
    from healthcare_mlops.tasks.load_members import generate_patients

    first = generated[0]
    again = resolve_settings("local", tmp_path / "again")
    generate_patients(cli_runtime(again), N, SEED, AS_OF)
    pd.testing.assert_frame_equal(sorted_frame(read(again, SILVER_PATIENTS)),
                                  sorted_frame(read(first, SILVER_PATIENTS)))
    dim_key = ["patient_natural_key", "scd_version"]
    pd.testing.assert_frame_equal(sorted_frame(read(again, DIM_PATIENTS), dim_key),
                                  sorted_frame(read(first, DIM_PATIENTS), dim_key))


def _load(spark, seed, count=3_000, as_of=AS_OF, shape=Shape(), **kwargs) -> pd.DataFrame:
    from healthcare_mlops.spark.generator import generate_load

    return sorted_frame(generate_load(spark, seed, as_of, count, shape, **kwargs).toPandas())


def test_values_do_not_depend_on_partitioning(spark, monkeypatch):
    from healthcare_mlops.spark import generator
    from healthcare_mlops.spark.generator import generate_load

    reference = _load(spark, 11)
    # Many small partitions instead of one.
    monkeypatch.setattr(generator, "ROWS_PER_PARTITION", 250)
    assert generate_load(spark, 11, AS_OF, 3_000, Shape()).rdd.getNumPartitions() == 12
    pd.testing.assert_frame_equal(_load(spark, 11), reference)
    # Repartitioning the output (a shuffle) changes row placement, never values.
    shuffled = generate_load(spark, 11, AS_OF, 3_000, Shape()).repartition(5, "sex").toPandas()
    pd.testing.assert_frame_equal(sorted_frame(shuffled), reference)


def test_a_later_load_does_not_depend_on_partitioning(spark):
    """Evolving existing members (incl. the low-volume sampling) is partition-independent."""
    from healthcare_mlops.spark.generator import generate_load

    first = generate_load(spark, 5, AS_OF, 2_000, Shape()).drop("annual_charges", "as_of_date",
                                                                  "source", "source_row")
    first = spark.createDataFrame(first.toPandas())         # materialised, like a table read
    later = AS_OF + dt.timedelta(days=90)
    # Every kind of change at once: sampling the delivered members (order + limit), smoker
    # flips, moves, bmi drift; plus the everyday re-measuring.
    shape = Shape(smoker_share_delta=0.15, northeast_share_delta=0.1, bmi_delta=3.0, delivered_members=1_500)
    one, many = (_load(spark, 5, 200, later, shape, existing=existing, previous_as_of=AS_OF)
                 for existing in (first.coalesce(1), first.repartition(7, "region")))
    assert len(one) == 1_500
    pd.testing.assert_frame_equal(one, many)


def test_another_seed_gives_other_members(spark):
    a, b = _load(spark, 11), _load(spark, 12)
    assert list(a["patient_natural_key"]) == list(b["patient_natural_key"])   # same keys ...
    for column in ("age", "bmi", "ssn", "member_id", "zip_code", "annual_charges"):
        assert (a[column] != b[column]).mean() > 0.5, column                 # ... other values
    # The statistics hold for any seed, not just for one.
    assert abs(b["smoker"].mean() - 0.205) <= 4 * se_share(0.205, len(b))
