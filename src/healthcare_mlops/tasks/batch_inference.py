"""The ``batch_inference`` task: score every current member for a scoring date.

``production`` mode scores with the model at alias ``champion`` into
``ml_patient_predictions``; ``validation`` mode (the training pipeline's step) scores with
the ``challenger`` into ``ml_patient_predictions_validation`` and then checks the written
partition against the output contract, never touching the production table.

The members are the features rows of the latest as-of date on or before the scoring
date (a load is a full snapshot of the members). Rows that break the model's input
contract go to ``data_quality_quarantine`` (stage ``batch_inference``; ``..._validation``
in validation mode) and features = predictions + quarantined, or the task fails.

Each table is written in one atomic Delta commit that replaces the scoring date's
partition only, so a rerun replaces that date and a killed run leaves the previous
state. The quarantine is written first and the predictions last: the predictions
partition appearing is the sign that the run finished.
"""

from __future__ import annotations

import datetime as dt

from healthcare_mlops.dates import parse_optional_date, today_utc
from healthcare_mlops.errors import UserError
from healthcare_mlops.failpoints import failpoint
from healthcare_mlops.settings import Settings
from healthcare_mlops.tables import (DATA_QUALITY_QUARANTINE, ML_INSURANCE_FEATURES, ML_PATIENT_PREDICTIONS,
                                     ML_PATIENT_PREDICTIONS_VALIDATION)

PRODUCTION, VALIDATION = "production", "validation"
MODES = {PRODUCTION: ("champion", ML_PATIENT_PREDICTIONS, "batch_inference"),
         VALIDATION: ("challenger", ML_PATIENT_PREDICTIONS_VALIDATION, "batch_inference_validation")}
QUARANTINE_SOURCE = ML_INSURANCE_FEATURES
REFERENCE_ARTIFACT = "reference/training_reference.json"
BEFORE_WRITE = "batch_inference:before_write"
BETWEEN_WRITES = "batch_inference:between_writes"


class OutputContractBroken(UserError):
    """Validation scoring wrote predictions that break the predictions contract."""


def parse_mode(mode: str | None) -> str:
    mode = (mode or PRODUCTION).strip().lower()
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}, not '{mode}'")
    return mode


def resolve_scoring_date(value) -> dt.date:
    """The scoring date: a date or YYYY-MM-DD, or today (UTC) when empty."""
    return parse_optional_date(value, "scoring date") or today_utc()


def resolve_model(settings: Settings, alias: str) -> dict:
    """The registered version at ``alias``: name, version, run id, URI, and its training reference."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from healthcare_mlops.runtime.mlflow_setup import configure_mlflow, find_in_registry

    client = configure_mlflow(settings)
    version = find_in_registry(client.get_model_version_by_alias, settings.model_name, alias)
    if version is None:
        raise UserError(f"{settings.model_name} has no '{alias}' version: run the training pipeline first "
                        "(healthcare-mlops jobs run ml_training_pipeline)")
    try:
        reference = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{REFERENCE_ARTIFACT}")
    except (MlflowException, OSError, ValueError) as exc:      # missing, unreadable, not JSON
        raise UserError(f"{settings.model_name} version {version.version} has no training reference "
                        f"({REFERENCE_ARTIFACT} in run {version.run_id}): {exc}") from None
    return {"name": settings.model_name, "version": str(version.version), "run_id": version.run_id,
            "alias": alias, "uri": f"models:/{settings.model_name}/{version.version}", "reference": reference}


def latest_features_date(features, scoring_date: dt.date, table: str) -> dt.date:
    from pyspark.sql import functions as F

    as_of = features.where(F.col("as_of_date") <= F.lit(scoring_date)).agg(F.max("as_of_date")).first()[0]
    if as_of is None:
        raise UserError(f"{table} has no features on or before {scoring_date.isoformat()}: "
                        "run the training pipeline first (healthcare-mlops jobs run ml_training_pipeline)")
    return as_of


def read_partition(spark, settings: Settings, name: str, column: str, value):
    """One partition of a table as a Spark DataFrame (locally only that partition's files are read)."""
    from pyspark.sql import functions as F

    if settings.is_local:
        from healthcare_mlops.runtime.storage import LocalTableStore

        return spark.createDataFrame(LocalTableStore(settings).delta_table(name)
                                     .to_pyarrow_table(filters=[(column, "=", value)]))
    return spark.table(settings.tables.fqn(name)).where(F.col(column) == F.lit(value))


def run(settings: Settings, scoring_date=None, mode: str | None = PRODUCTION) -> dict:
    """Score the members for ``scoring_date`` (default today, UTC); return the counts."""
    import mlflow

    from healthcare_mlops.scoring.batch import (ModelSource, model_input_names, model_source,
                                                output_contract_problems, predictions, quarantine_rows,
                                                score_features)
    from healthcare_mlops.scoring.rules import BusinessRules
    from healthcare_mlops.spark.session import get_spark
    from healthcare_mlops.spark.tables_io import read_table, table_exists, write_table
    from pyspark.sql import functions as F

    mode = parse_mode(mode)
    day = resolve_scoring_date(scoring_date)
    alias, target_table, stage = MODES[mode]
    spark = get_spark(settings)
    features_fqn = settings.tables.fqn(ML_INSURANCE_FEATURES)
    if not table_exists(spark, settings, ML_INSURANCE_FEATURES):
        raise UserError(f"{features_fqn} does not exist: run the training pipeline first "
                        "(healthcare-mlops jobs run ml_training_pipeline)")
    all_features = read_table(spark, settings, ML_INSURANCE_FEATURES)
    as_of = latest_features_date(all_features, day, features_fqn)
    model = resolve_model(settings, alias)
    rules = BusinessRules.from_variables(settings.variables, model["reference"])

    local_path = mlflow.artifacts.download_artifacts(model["uri"])
    source: ModelSource = model_source(spark, model["uri"], local_path, shared_filesystem=settings.is_local,
                                       run_id=model["run_id"])
    input_names = model_input_names(mlflow.models.Model.load(local_path))
    features = all_features.where(F.col("as_of_date") == F.lit(as_of))
    n_features = features.count()
    scored_at = dt.datetime.now(dt.timezone.utc)

    rows = predictions(score_features(features, source, rules, input_names), day, model, scored_at)
    rejected = quarantine_rows(features, stage, QUARANTINE_SOURCE, day)
    failpoint(BEFORE_WRITE)
    n_quarantined = write_table(rejected, settings, DATA_QUALITY_QUARANTINE, mode="replace_partition",
                                partition={"stage": stage, "source": QUARANTINE_SOURCE, "as_of_date": day},
                                partition_by=["as_of_date"])
    failpoint(BETWEEN_WRITES)
    n_predictions = write_table(rows, settings, target_table, mode="replace_partition",
                                partition={"scoring_date": day}, partition_by=["scoring_date"])
    if n_features != n_predictions + n_quarantined:
        raise RuntimeError(f"batch inference lost rows on {day}: features {n_features} != "
                           f"predictions {n_predictions} + quarantined {n_quarantined}")

    written = read_partition(spark, settings, target_table, "scoring_date", day)
    summary = written.agg(F.sum(F.col("requires_review").cast("long")).alias("review"),
                          F.sum(F.col("high_risk").cast("long")).alias("high_risk")).first()
    result = {"mode": mode, "scoring_date": day.isoformat(), "features_as_of": as_of.isoformat(),
              "features": n_features, "predictions": n_predictions, "quarantined": n_quarantined,
              "requires_review": int(summary["review"] or 0), "high_risk": int(summary["high_risk"] or 0),
              "table": settings.tables.fqn(target_table), "model_name": model["name"],
              "model_version": model["version"], "alias": alias}
    print(f"batch_inference ({mode}) {result['scoring_date']}: features as of {result['features_as_of']} "
          f"{n_features} = predictions {n_predictions} + quarantined {n_quarantined} -> {result['table']} "
          f"({model['name']} version {model['version']}, '{alias}'); "
          f"high risk {result['high_risk']}, flagged for review {result['requires_review']}")
    if mode == VALIDATION:
        problems = output_contract_problems(written, rules.min_predicted_charges)
        if problems:
            raise OutputContractBroken(f"validation scoring of {model['name']} version {model['version']} "
                                       f"breaks the predictions contract: " + "; ".join(problems))
        print(f"output contract holds for {result['table']} on {result['scoring_date']}")
    return result
