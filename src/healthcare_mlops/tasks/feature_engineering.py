"""The ``feature_engineering`` task: one as-of date's load -> ml_insurance_features + quarantine.

The shell around ``spark.features.build_features``: it resolves the as-of date, reads
dim_patients and silver_patients, and replaces that date's partition of the features
table and this stage's quarantine rows for that date, each in one atomic write, so a
rerun of a date replaces that date only.

It refuses to run while the member-load journal shows a load that has not ended (still
running, or killed: its rows may be in silver until the next load rolls it back), so no
feature is ever built from a load that is then rolled back.
"""

from __future__ import annotations

import datetime as dt

from healthcare_mlops.data.load_journal import Load, unfinished
from healthcare_mlops.dates import parse_optional_date
from healthcare_mlops.errors import UserError
from healthcare_mlops.composition import Runtime
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


def refuse_unfinished_loads(loads: list[Load]) -> None:
    """A UserError naming the first of ``loads`` (the journal's loads without an end), if any."""
    if loads:
        load = loads[0]
        raise UserError(f"the member load of {load.source} as of {load.as_of_date.isoformat()} did not finish "
                        "(it is running, or its process died); features are not built from it: wait for it, or "
                        "run the next member load (data ingest or data generate), which rolls it back first")


def run(runtime: Runtime, as_of: dt.date | str | None = None) -> dict:
    """Featurize the members delivered on ``as_of`` (default: the latest load); return the counts."""
    from healthcare_mlops.spark.features import QUARANTINE_SOURCE, STAGE, build_features, delivered_members

    requested = parse_optional_date(as_of, "as-of date")
    catalog = runtime.spark_catalog
    refuse_unfinished_loads(unfinished(catalog))
    for name in (SILVER_PATIENTS, DIM_PATIENTS):
        if not catalog.exists(name):
            raise UserError(f"table {catalog.fqn(name)} does not exist yet; load members first "
                            f"(healthcare-mlops data generate or data ingest)")
    day = resolve_load_date(catalog.distinct_values(SILVER_PATIENTS, "as_of_date"), requested)
    silver = catalog.read(SILVER_PATIENTS)
    features, rejected = build_features(catalog.read(DIM_PATIENTS), silver, day)
    delivered = delivered_members(silver, day).count()
    n_features = catalog.write(features, ML_INSURANCE_FEATURES, mode="replace_partition",
                               partition={"as_of_date": day}, partition_by=["as_of_date"])
    n_quarantined = catalog.write(rejected, DATA_QUALITY_QUARANTINE, mode="replace_partition",
                                  partition={"stage": STAGE, "source": QUARANTINE_SOURCE, "as_of_date": day},
                                  partition_by=["as_of_date"])
    if delivered != n_features + n_quarantined:
        raise RuntimeError(f"feature engineering lost rows on {day}: delivered {delivered} != "
                           f"features {n_features} + quarantined {n_quarantined}")
    result = {"as_of_date": day.isoformat(), "delivered": delivered, "features": n_features,
              "quarantined": n_quarantined, "table": catalog.fqn(ML_INSURANCE_FEATURES)}
    print(f"feature_engineering as of {result['as_of_date']}: delivered {delivered} = "
          f"features {n_features} + quarantined {n_quarantined} -> {result['table']}")
    return result
