"""The laptop's CSV member load (Arrow and DuckDB) gives the tables the Spark path gives, row for row.

Locally ``data ingest`` runs without Spark (``runtime/arrow_member_load.py``); on Databricks the
Spark path runs (``spark/patient_load.ingest_frames``). The same files, in the same order, go
through both in two homes: the good and the bad-rows files of ``test_ingest``, two monthly files
with member ids (new versions, closed versions), a second file of that month sharing members
(quarantined as loaded elsewhere) and a rerun of an earlier date (dim_patients folded again).
silver_patients, the quarantine and dim_patients must then be equal, every column of every row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil

import pandas as pd
import pytest

from healthcare_mlops.composition import build_runtime, cli_runtime_identity
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import resolve_settings
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, DIM_PATIENTS, SILVER_PATIENTS
from test_ingest import BAD_LINES, GOOD_LINES, write_csv

JANUARY, FEBRUARY = dt.date(2025, 1, 1), dt.date(2025, 2, 1)
MEMBERS = 40
HOSTILE = ["M9000001,30,male,1e-5,0,no,southwest,12", "M9000002,31,female,30,0,no,southwest,1e9",
           "M9000003,32,female,30,0,no,southwest,12345678.5", ",33,male,25,1,no,northeast,100",
           "M9000004,34,male,25,1,no,northeast,\"1,5\"", "M9000005,35,mäle,25,1,no,northeast,\"quote\"\"d\"",
           "M9000006,+36,male,025.50,1,YES,northeast,.5"]


# Rows the checks refuse with values outside a category's list (kept as enums while judged), the same
# refused row twice, valid rows that parse to the same values, rows without charges.
CATEGORY_LINES = ["age,sex,bmi,children,smoker,region,charges", "30,mal,30,0,no,southwest,100",
                  "30,femal,30,0,no,southwest,100", "30,mal,30,0,no,southwest,100", "30,male,30,0,no,nowhere,100",
                  "30,male,30,0,no,NoWhere ,100", "30,male,30,0,no,southwest,100", "30, Male,30,0,no,southwest,100",
                  "30,male,30,0,no,southwest,", "30,male,30,0,no,southwest, ", "31,female,30,0,no,northeast,"]


def member_lines(month: int, changed: range = range(0)) -> list[str]:
    rows = [f"M{i:07d},{20 + i % 50},{'female' if i % 2 else 'male'},{25 + i % 20 + (1.5 if i in changed else 0):.1f},"
            f"{i % 4},{'yes' if i % 5 == 0 else 'no'},southwest,{2000 + i + month}" for i in range(MEMBERS)]
    return ["member_id,age,sex,bmi,children,smoker,region,charges", *rows, *HOSTILE]


def _loads(root):
    """The files and dates, in load order (each home loads the same files)."""
    return [(write_csv(root / "good.csv", GOOD_LINES), JANUARY),
            (write_csv(root / "bad.csv", BAD_LINES, bom=False, newline="\n"), JANUARY),
            (write_csv(root / "categories.csv", CATEGORY_LINES), JANUARY),
            (write_csv(root / "members_01.csv", member_lines(1)), JANUARY),
            (write_csv(root / "members_02.csv", member_lines(2, range(0, 10))), FEBRUARY),
            (write_csv(root / "members_02_late.csv", member_lines(3, range(5, 15))[:20]), FEBRUARY),
            (root / "good.csv", JANUARY)]


def _tables(settings) -> dict[str, pd.DataFrame]:
    catalog = DeltaCatalog(settings)
    tables = {}
    for name in (SILVER_PATIENTS, DATA_QUALITY_QUARANTINE, DIM_PATIENTS):
        frame = catalog.read_arrow(name).to_pandas()
        tables[name] = frame.sort_values(sorted(frame.columns), ignore_index=True, na_position="first")
    return tables


@pytest.fixture(scope="module")
def both_paths(spark, tmp_path_factory):
    from healthcare_mlops.tasks.load_members import ingest_csv

    root = tmp_path_factory.mktemp("paths")
    loads = _loads(root)
    reports, tables = {}, {}
    for engine in ("arrow", "spark"):
        settings = resolve_settings("local", root / f"home_{engine}")
        runtime = build_runtime(settings, cli_runtime_identity,     # "spark": the Databricks choice, taken here
                                loads_members_in_arrow=lambda _settings, arrow=engine == "arrow": arrow)
        reports[engine] = [ingest_csv(runtime, path, as_of).as_dict() for path, as_of in loads]
        tables[engine] = _tables(settings)
    return reports, tables


def test_both_paths_report_the_same_counts(both_paths):
    reports, _ = both_paths
    assert reports["arrow"] == reports["spark"]
    assert all(r["rows_in"] == r["rows_loaded"] + r["rows_quarantined"] for r in reports["arrow"])
    assert reports["arrow"][-1] == reports["arrow"][0] | {"current_members": reports["arrow"][-1]["current_members"],
                                                          "dim_versions": reports["arrow"][-1]["dim_versions"]}


@pytest.mark.parametrize("table", [SILVER_PATIENTS, DATA_QUALITY_QUARANTINE, DIM_PATIENTS])
def test_both_paths_write_the_same_rows(both_paths, table):
    _, tables = both_paths
    arrow, spark = tables["arrow"][table], tables["spark"][table]
    assert len(arrow) > 0
    pd.testing.assert_frame_equal(arrow, spark, check_dtype=False)


def test_the_comparison_covers_every_kind_of_row(both_paths):
    _, tables = both_paths
    quarantine, dim = tables["arrow"][DATA_QUALITY_QUARANTINE], tables["arrow"][DIM_PATIENTS]
    reasons = " | ".join(quarantine["reason"])
    for expected in ("duplicate of source row", "member already loaded for 2025-02-01", "row has 6 fields",
                     "above the upper bound", "bmi outside 10.0-80.0: 1.0E-5", "missing value",
                     "'femal' is not one of female, male", "'NoWhere ' is not one of"):
        assert expected in reasons
    assert (dim["scd_version"] == 2).sum() >= 10 and (~dim["is_current_record"]).sum() >= 10


def test_a_home_with_an_unpartitioned_dim_patients_keeps_loading(tmp_path):
    """dim_patients written before it was partitioned by effective_from: a later month's members
    are appended and their changed versions closed in that table, which keeps its layout."""
    from deltalake import DeltaTable, write_deltalake

    from healthcare_mlops.composition import cli_runtime
    from healthcare_mlops.tasks.load_members import ingest_csv

    settings = resolve_settings("local", tmp_path / "home")
    ingest_csv(cli_runtime(settings), write_csv(tmp_path / "members_01.csv", member_lines(1)), JANUARY)
    path = str(DeltaCatalog(settings).path(DIM_PATIENTS))
    january = DeltaTable(path).to_pyarrow_table()
    shutil.rmtree(path)                                  # made again as an older home made it
    write_deltalake(path, january)
    assert DeltaTable(path).metadata().partition_columns == []
    report = ingest_csv(cli_runtime(settings), write_csv(tmp_path / "members_02.csv", member_lines(2, range(0, 10))),
                        FEBRUARY)
    assert (report.current_members, report.dim_versions) == (MEMBERS, MEMBERS + 10)
    dim = DeltaCatalog(settings).read_arrow(DIM_PATIENTS).to_pandas()
    closed = dim[~dim["is_current_record"]]
    assert len(closed) == 10 and set(closed["effective_to"]) == {FEBRUARY}
    assert DeltaTable(path).metadata().partition_columns == []


def test_on_a_workspace_spark_reads_the_member_key_secret_by_reference(spark):
    """The hash's key is never a literal of the load's plan (a run's Spark UI and query profile show the plan to
    everyone who may view the run): on a workspace Spark reads it with SQL's ``secret(scope, key)``. A session
    function stands in for the workspace's ``secret()`` here; the keys must be the ones the key's text gives,
    the local engines' formula."""
    from pyspark.sql import functions as F

    from healthcare_mlops.spark.patient_load import KEY_HEX, MEMBER_KEY_PREFIX, MemberKeys, member_key

    value = "a per-workspace key"
    spark.udf.register("secret", lambda scope, key: value if (scope, key) == ("members", "member-key") else None)
    ids = spark.createDataFrame([("M0000001",), ("M0000002",)], ["member_id"])

    def keyed(keys: MemberKeys):
        return ids.select(member_key(F.col("member_id"), keys).alias("key"))

    by_reference = keyed(MemberKeys("member_id", secret="", secret_reference=("members", "member-key")))
    by_value = keyed(MemberKeys("member_id", secret=value))
    expected = [MEMBER_KEY_PREFIX + hashlib.sha256(f"{len(value)}:{value}|{i}".encode()).hexdigest()[:KEY_HEX]
                for i in ("M0000001", "M0000002")]
    assert [row.key for row in by_reference.collect()] == expected
    assert [row.key for row in by_value.collect()] == expected
    plans = {name: frame._jdf.queryExecution().toString() for name, frame in
             (("reference", by_reference), ("value", by_value))}
    assert value not in plans["reference"] and "secret(members, member-key)" in plans["reference"]
    assert value in plans["value"]                  # what the reference keeps out of a workspace's plan
