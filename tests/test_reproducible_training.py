"""Determinism: the same data gives the same model, whatever the as-of date, row order or files.

The end-to-end test runs the real loop (CSV ingest and features on Spark, delta-rs tables,
training registered in MLflow, governance validation and reproduction) on one 1,338-row CSV
loaded on one date and its rows shuffled under another file name on a second date, the
second date's features rewritten by Spark in another row order and partitioning.
"""

from __future__ import annotations

import datetime as dt

import mlflow
import numpy as np
import pandas as pd
import pytest

from healthcare_mlops.composition import build_runtime, cli_runtime
from healthcare_mlops.data.synthetic import synthetic_members
from healthcare_mlops.governance.lineage import FRAME_HASH_TAG
from healthcare_mlops.governance.reproduce import IDENTICAL, reproduce_version
from healthcare_mlops.identity import APPROVER, Identity
from healthcare_mlops.modeling.frame_hash import frame_hash
from healthcare_mlops.runtime.catalog import table_catalog
from healthcare_mlops.runtime.catalog_base import FILE_RETENTION, LOG_RETENTION, VersionUnavailable
from healthcare_mlops.runtime.mlflow_setup import configure_mlflow
from healthcare_mlops.runtime.unity_catalog import retention_statement, time_travel_query, unreadable_version
from healthcare_mlops.tables import ML_INSURANCE_FEATURES

FIRST, SECOND = dt.date(2026, 1, 1), dt.date(2026, 3, 15)
CANDIDATES = ("hist_gradient_boosting_poisson", "random_forest")   # the forest: its parallel predict was not
OUTPUTS = ("predicted_annual_charges", "risk_score", "interval_lower", "interval_upper")


def write_public_csv(path, rows: int = 1338, seed: int = 1338) -> None:
    """A CSV in the public insurance format (age,sex,bmi,children,smoker,region,charges)."""
    members = synthetic_members(rows, np.random.default_rng(seed))
    pd.DataFrame({"age": members["age"], "sex": members["sex"], "bmi": members["bmi"],
                  "children": members["children"], "smoker": np.where(members["smoker"], "yes", "no"),
                  "region": members["region"], "charges": np.round(members["annual_charges"], 4)}
                 ).to_csv(path, index=False)


def _shuffled_into_files(settings, spark, day: dt.date, files: int) -> int:
    """Rewrite ``day``'s features in Spark's order after a random sort and repartition, as ``files``
    commits (so ``files`` files, listed in another order than the first date's one file)."""
    from pyspark.sql import functions as F

    catalog = table_catalog(settings, spark)
    shuffled = catalog.read(ML_INSURANCE_FEATURES, [("as_of_date", "=", day)]).orderBy(F.rand(7)).repartition(files)
    rows = shuffled.toArrow()
    size = -(-rows.num_rows // files)
    chunks = [rows.slice(start, size) for start in range(0, rows.num_rows, size)][::-1]
    catalog.write(chunks[0], ML_INSURANCE_FEATURES, mode="replace_partition", partition={"as_of_date": day},
                  partition_by=["as_of_date"])
    for chunk in chunks[1:]:
        catalog.write(chunk, ML_INSURANCE_FEATURES, mode="append", partition_by=["as_of_date"])
    return len([f for f in catalog.delta_table(ML_INSURANCE_FEATURES).file_uris() if f"as_of_date={day}" in f])


def test_same_csv_on_two_dates_and_reordered_files_gives_identical_models(spark, settings, tmp_path):
    from healthcare_mlops.tasks.load_members import ingest_csv
    from healthcare_mlops.tasks import feature_engineering, model_training

    path, shuffled = tmp_path / "insurance.csv", tmp_path / "members_export_2026-03.csv"
    write_public_csv(path)
    rows = pd.read_csv(path)
    rows.sample(frac=1.0, random_state=11).to_csv(shuffled, index=False)      # no row order, another name
    for day, csv_file in ((FIRST, path), (SECOND, shuffled)):
        ingest_csv(cli_runtime(settings), csv_file, day)
        feature_engineering.run(build_runtime(settings), day)
    assert _shuffled_into_files(settings, spark, SECOND, files=5) == 5
    keys = [table_catalog(settings).read_arrow(ML_INSURANCE_FEATURES, [("as_of_date", "=", day)],
                                               ["patient_natural_key"]).column(0).to_pylist()
            for day in (FIRST, SECOND)]
    assert sorted(keys[0]) == sorted(keys[1]) and keys[0] != keys[1]      # the same members, in another order
    versions = [model_training.run(build_runtime(settings), day, candidates=CANDIDATES)["version"]
                for day in (FIRST, SECOND)]

    client = configure_mlflow(settings)
    tags = [client.get_model_version(settings.model_name, v).tags for v in versions]
    assert tags[0][FRAME_HASH_TAG] == tags[1][FRAME_HASH_TAG]
    runs = [client.get_run(client.get_model_version(settings.model_name, v).run_id).data for v in versions]
    assert runs[0].params["candidate"] == runs[1].params["candidate"]
    assert runs[0].metrics == runs[1].metrics                         # every metric, to the last bit
    rows = table_catalog(settings).read_pandas(ML_INSURANCE_FEATURES, [("as_of_date", "=", FIRST)])
    inputs = rows[["age", "bmi", "children", "smoker", "region"]]
    first, second = (mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{v}").predict(inputs) for v in versions)
    for column in OUTPUTS:
        assert np.array_equal(np.round(first[column], 2), np.round(second[column], 2)), column   # to the cent
        assert np.array_equal(first[column].to_numpy(), second[column].to_numpy()), column       # and exactly
    governance = build_runtime(settings).governance(Identity("owner@example.com", APPROVER))
    verdicts = [[(c.name, c.value, c.verdict) for c in governance.validate(v).checks] for v in versions]
    assert verdicts[0] == verdicts[1]
    reproduced = reproduce_version(build_runtime(settings).reproduction_sources(),
                                   Identity("owner@example.com", APPROVER), versions[1])
    assert reproduced.result == IDENTICAL, reproduced.as_dict()


def test_the_frame_hash_ignores_order_and_date_but_not_values():
    members = synthetic_members(300, np.random.default_rng(3))
    frame = pd.DataFrame({k: members[k] for k in ("age", "bmi", "children", "smoker", "region", "sex",
                                                   "age_band", "family_size_category", "annual_charges")})
    frame = frame.assign(patient_natural_key=[f"m{i:04d}" for i in range(len(frame))], as_of_date=FIRST)
    reordered = frame.sample(frac=1.0, random_state=5)[list(reversed(frame.columns))].assign(as_of_date=SECOND)
    assert frame_hash(frame) == frame_hash(reordered)
    changed = frame.copy()
    changed.loc[17, "annual_charges"] += 0.01
    assert frame_hash(changed) != frame_hash(frame)
    renamed = frame.assign(patient_natural_key=[f"x{i:04d}" for i in range(len(frame))])
    assert frame_hash(renamed) != frame_hash(frame)


def test_unity_catalog_time_travel_and_retention_statements():
    assert time_travel_query("c.s.ml_insurance_features", 12) == (
        "SELECT * FROM c.s.ml_insurance_features VERSION AS OF 12")
    retention = {LOG_RETENTION: "interval 1095 days", FILE_RETENTION: "interval 1095 days"}
    assert retention_statement("c.s.t", retention) == (
        "ALTER TABLE c.s.t SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = 'interval 1095 days', "
        "'delta.logRetentionDuration' = 'interval 1095 days')")
    assert unreadable_version("[DELTA_FILE_NOT_FOUND_DETAILED] File part-0001.parquet referenced in the log not found")
    assert unreadable_version("The provided timestamp ... Cannot time travel Delta table to version 3")
    assert not unreadable_version("[TABLE_OR_VIEW_NOT_FOUND] The table c.s.t cannot be found")


def test_an_expired_log_version_is_reported_as_unavailable(settings):
    import pyarrow as pa

    catalog = table_catalog(settings)
    for value in (1, 2):
        catalog.write(pa.table({"v": [value]}), "ml_model_alerts")
    catalog.delta_table("ml_model_alerts").create_checkpoint()
    log = settings.home / "tables"
    first_entry = next(log.rglob("ml_model_alerts/_delta_log/00000000000000000000.json"))
    first_entry.unlink()                        # what log cleanup past delta.logRetentionDuration does
    with pytest.raises(VersionUnavailable, match="version 0 is no longer readable"):
        catalog.read_arrow("ml_model_alerts", version=0)
