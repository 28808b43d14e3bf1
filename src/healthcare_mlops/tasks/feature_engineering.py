"""The ``feature_engineering`` task: one as-of date's load -> ml_insurance_features + quarantine.

The shell around ``spark.features.build_features``: it resolves the as-of date, reads
dim_patients and silver_patients, and replaces that date's partition of the features
table and this stage's quarantine rows for that date, each in one atomic write, so a
rerun of a date replaces that date only.
"""

from __future__ import annotations

import datetime as dt

from healthcare_mlops.dates import parse_optional_date
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import (DATA_QUALITY_QUARANTINE, DIM_PATIENTS, ML_INSURANCE_FEATURES,
                                     SILVER_PATIENTS)


def resolve_load_date(load_dates: list[dt.date], as_of: dt.date | None) -> dt.date:
    """``as_of`` when silver has a load on it; the latest load when None; else a UserError."""
    if not load_dates:
        raise UserError("silver_patients holds no loads yet; load members first "
                        "(healthcare-mlops data generate or data ingest)")
    latest = max(load_dates)
    if as_of is None:
        return latest
    if as_of not in load_dates:
        raise UserError(f"no silver_patients load on as-of date {as_of.isoformat()}; "
                        f"the latest load is {latest.isoformat()}")
    return as_of


def run(settings: Settings, as_of: dt.date | str | None = None) -> dict:
    """Featurize the members delivered on ``as_of`` (default: the latest load); return the counts."""
    from healthcare_mlops.spark.features import QUARANTINE_SOURCE, STAGE, build_features, delivered_members
    from healthcare_mlops.spark.session import get_spark
    from healthcare_mlops.spark.tables_io import read_table, table_exists, write_table

    requested = parse_optional_date(as_of, "as-of date")
    spark = get_spark(settings)
    for name in (SILVER_PATIENTS, DIM_PATIENTS):
        if not table_exists(spark, settings, name):
            raise UserError(f"table {settings.tables.fqn(name)} does not exist yet; load members first "
                            f"(healthcare-mlops data generate or data ingest)")
    silver = read_table(spark, settings, SILVER_PATIENTS)
    load_dates = [row[0] for row in silver.select("as_of_date").distinct().collect() if row[0] is not None]
    day = resolve_load_date(load_dates, requested)
    dim = read_table(spark, settings, DIM_PATIENTS)

    features, rejected = build_features(dim, silver, day)
    delivered = delivered_members(silver, day).count()
    n_features = write_table(features, settings, ML_INSURANCE_FEATURES, mode="replace_partition",
                             partition={"as_of_date": day}, partition_by=["as_of_date"])
    n_quarantined = write_table(rejected, settings, DATA_QUALITY_QUARANTINE, mode="replace_partition",
                                partition={"stage": STAGE, "source": QUARANTINE_SOURCE, "as_of_date": day},
                                partition_by=["as_of_date"])
    if delivered != n_features + n_quarantined:
        raise RuntimeError(f"feature engineering lost rows on {day}: delivered {delivered} != "
                           f"features {n_features} + quarantined {n_quarantined}")
    result = {"as_of_date": day.isoformat(), "delivered": delivered, "features": n_features,
              "quarantined": n_quarantined, "table": settings.tables.fqn(ML_INSURANCE_FEATURES)}
    print(f"feature_engineering as of {result['as_of_date']}: delivered {delivered} = "
          f"features {n_features} + quarantined {n_quarantined} -> {result['table']}")
    return result
