"""The ``batch_inference`` task: score every current member for a scoring date.

``production`` mode scores with the champion (the audit log's, ``governance/champion.py``) into
``ml_patient_predictions`` (before the first champion exists it ends successfully, saying it
waits; a champion that disappeared is a failure: governance/first_champion.py); ``validation``
mode (the training pipeline's step) scores with
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
from healthcare_mlops.explanations.contributions import BASE_COLUMN
from healthcare_mlops.failpoints import failpoint
from healthcare_mlops.governance.first_champion import waiting_for_first_champion
from healthcare_mlops.modeling.artifacts import CHALLENGER, CHAMPION, TRAINING_REFERENCE_PATH
from healthcare_mlops.composition import Runtime
from healthcare_mlops.progress import Progress
from healthcare_mlops.tables import (DATA_QUALITY_QUARANTINE, IS_CRITICAL_RISK, ML_INSURANCE_FEATURES,
                                     ML_PATIENT_PREDICTIONS, ML_PATIENT_PREDICTIONS_VALIDATION)

PRODUCTION, VALIDATION = "production", "validation"
MODES = {PRODUCTION: (CHAMPION, ML_PATIENT_PREDICTIONS, "batch_inference"),
         VALIDATION: (CHALLENGER, ML_PATIENT_PREDICTIONS_VALIDATION, "batch_inference_validation")}
QUARANTINE_SOURCE = ML_INSURANCE_FEATURES
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


def resolve_model(runtime: Runtime, alias: str) -> dict:
    """The registered version at ``alias``: name, version, run id, URI, and its training reference."""
    import mlflow
    from mlflow.exceptions import MlflowException

    settings = runtime.settings
    if alias == CHAMPION:       # the audited champion, never a half-moved alias (governance/champion.py)
        from healthcare_mlops.governance.champion import resolve_champion

        version = resolve_champion(runtime.audit_log, runtime.registry)
    else:
        version = runtime.registry.aliased(alias)
    if version is None:
        raise UserError(f"{settings.model_name} has no '{alias}' version: run the training pipeline first "
                        "(healthcare-mlops jobs run ml_training_pipeline)")
    try:
        reference = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{TRAINING_REFERENCE_PATH}")
    except (MlflowException, OSError, ValueError) as exc:      # missing, unreadable, not JSON
        raise UserError(f"{settings.model_name} version {version.version} has no training reference "
                        f"({TRAINING_REFERENCE_PATH} in run {version.run_id}): {exc}") from None
    return {"name": settings.model_name, "version": str(version.version), "run_id": version.run_id,
            "alias": alias, "uri": f"models:/{settings.model_name}/{version.version}", "reference": reference}


def latest_features_date(catalog, scoring_date: dt.date) -> dt.date:
    """The latest as-of date of the features on or before the scoring date (a load is a full snapshot)."""
    dates = catalog.distinct_values(ML_INSURANCE_FEATURES, "as_of_date", [("as_of_date", "<=", scoring_date)])
    if not dates:
        raise UserError(f"{catalog.fqn(ML_INSURANCE_FEATURES)} has no features on or before "
                        f"{scoring_date.isoformat()}: run the training pipeline first "
                        "(healthcare-mlops jobs run ml_training_pipeline)")
    return dates[-1]


def run(runtime: Runtime, scoring_date=None, mode: str | None = PRODUCTION) -> dict:
    """Score the members for ``scoring_date`` (default today, UTC); return the counts."""
    import mlflow

    from healthcare_mlops.parameters import scoring_thresholds
    from healthcare_mlops.runtime.model_loading import load_scoring_model
    from healthcare_mlops.scoring.batch import (ModelSource, model_input_names, model_source, predictions,
                                                score_features)
    from healthcare_mlops.scoring.rules import BusinessRules

    settings = runtime.settings
    mode = parse_mode(mode)
    day = resolve_scoring_date(scoring_date)
    alias, target_table, stage = MODES[mode]
    if mode == PRODUCTION:
        waiting = waiting_for_first_champion(runtime.audit_log, runtime.registry, "batch_inference")
        if waiting:            # a new workspace: the schedule runs before the first champion exists
            print(waiting)
            return {"mode": mode, "scoring_date": day.isoformat(), "waiting": waiting}
    catalog = runtime.spark_catalog
    if not catalog.exists(ML_INSURANCE_FEATURES):
        raise UserError(f"{catalog.fqn(ML_INSURANCE_FEATURES)} does not exist: run the training pipeline first "
                        "(healthcare-mlops jobs run ml_training_pipeline)")
    as_of = latest_features_date(catalog, day)
    model = resolve_model(runtime, alias)
    rules = BusinessRules.for_model(scoring_thresholds(settings.variables), model["reference"])

    local_path = mlflow.artifacts.download_artifacts(model["uri"])
    source: ModelSource = model_source(model["uri"], local_path,
                                       shared_filesystem=settings.executors_share_filesystem, run_id=model["run_id"],
                                       loader=load_scoring_model)
    input_names = model_input_names(mlflow.models.Model.load(local_path))
    features = catalog.read(ML_INSURANCE_FEATURES, [("as_of_date", "=", as_of)])
    n_features = features.count()
    progress = Progress("batch scoring", 1)
    progress.note(f"scoring {n_features:,} feature rows with {model['name']} version {model['version']}")
    scored_at = runtime.clock()

    rows = predictions(score_features(features, source, rules, input_names), day, model, scored_at)
    n_quarantined, n_predictions = _write_partitions(catalog, features, rows, stage, target_table, day)
    progress.advance(f"{n_predictions:,} predictions and {n_quarantined:,} quarantined rows written")
    if n_features != n_predictions + n_quarantined:
        raise RuntimeError(f"batch inference lost rows on {day}: features {n_features} != "
                           f"predictions {n_predictions} + quarantined {n_quarantined}")

    written = catalog.read(target_table, [("scoring_date", "=", day)])
    summary = _summary(written)
    result = {"mode": mode, "scoring_date": day.isoformat(), "features_as_of": as_of.isoformat(),
              "features": n_features, "predictions": n_predictions, "quarantined": n_quarantined,
              "requires_review": int(summary["review"] or 0),
              "critical_risk_members": int(summary["critical_risk"] or 0),
              "table": catalog.fqn(target_table), "model_name": model["name"],
              "model_version": model["version"], "alias": alias}
    _announce(result, int(summary["unexplained"] or 0))
    if mode == VALIDATION:
        _check_output_contract(written, rules.thresholds.min_predicted_charges, result)
    return result


def _write_partitions(catalog, features, rows, stage: str, target_table: str, day: dt.date) -> tuple[int, int]:
    """Replace the scoring date's quarantine partition, then its predictions partition; the row counts.

    The predictions are written last: their partition appearing is the sign that the run finished.
    """
    from healthcare_mlops.scoring.batch import quarantine_rows

    rejected = quarantine_rows(features, stage, QUARANTINE_SOURCE, day)
    failpoint(BEFORE_WRITE)
    n_quarantined = catalog.write(rejected, DATA_QUALITY_QUARANTINE, mode="replace_partition",
                                  partition={"stage": stage, "source": QUARANTINE_SOURCE, "as_of_date": day},
                                  partition_by=["as_of_date"])
    failpoint(BETWEEN_WRITES)
    n_predictions = catalog.write(rows, target_table, mode="replace_partition",
                                  partition={"scoring_date": day}, partition_by=["scoring_date"])
    return n_quarantined, n_predictions


def _summary(written):
    """How many written predictions need review, are in the critical band, or are flagged without an
    explanation (only flagged members are explained: scoring.batch.EXPLAIN_FLAGGED)."""
    from pyspark.sql import functions as F

    return written.agg(F.sum(F.col("requires_review").cast("long")).alias("review"),
                       F.sum(F.col(IS_CRITICAL_RISK).cast("long")).alias("critical_risk"),
                       F.sum((F.col("requires_review") & F.col(BASE_COLUMN).isNull()).cast("long"))
                       .alias("unexplained")).first()


def _announce(result: dict, unexplained: int) -> None:
    """Print what the run scored and wrote, and which members could not be explained."""
    print(f"batch_inference ({result['mode']}) {result['scoring_date']}: features as of {result['features_as_of']} "
          f"{result['features']} = predictions {result['predictions']} + quarantined {result['quarantined']} -> "
          f"{result['table']} ({result['model_name']} version {result['model_version']}, '{result['alias']}'); "
          f"critical risk {result['critical_risk_members']}, flagged for review {result['requires_review']}")
    if unexplained:
        print(f"no reasons for {unexplained} flagged members: {result['model_name']} version {result['model_version']} "
              "cannot be explained exactly (its explanation columns are empty)")


def _check_output_contract(written, min_predicted_charges: float, result: dict) -> None:
    """Fail validation scoring whose written partition breaks the predictions contract."""
    from healthcare_mlops.scoring.batch import output_contract_problems

    problems = output_contract_problems(written, min_predicted_charges)
    if problems:
        raise OutputContractBroken(f"validation scoring of {result['model_name']} version {result['model_version']} "
                                   f"breaks the predictions contract: " + "; ".join(problems))
    print(f"output contract holds for {result['table']} on {result['scoring_date']}")
