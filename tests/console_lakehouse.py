"""A local lakehouse for the console, built in seconds without the pipeline.

``ml_patient_predictions`` written directly with ``DeltaCatalog`` as synthetic rows that follow
``scoring/contract.py`` (the latest scoring date holds 80 % of the rows, two earlier dates 10 %
each), 30 monitoring runs of drift, fairness and alerts rows (``monitoring/contract.py``), job
runs (``job_runs``), and a real registered model: a small model trained on synthetic members,
validated and promoted by ``Governance`` (version 1, champion) and registered again as the
challenger (version 2), so the Overview, Governance and Score pages have a registry to read.

Test support (the console, SQL, security and browser tests); the console benchmarks build
their lakehouses with it too.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from healthcare_mlops.composition import build_runtime
from healthcare_mlops import tables as T
from healthcare_mlops.bundle.run_states import SUCCEEDED
from healthcare_mlops.emulator.run_guard import record_audit
from healthcare_mlops.emulator.run_history import RunRecord, append_runs
from healthcare_mlops.data.contract import REGIONS
from healthcare_mlops.data.synthetic import synthetic_members
from healthcare_mlops.explanations.contributions import TOP_REASONS_COLUMN
from healthcare_mlops.explanations.reasons import join_words, top_reasons
from healthcare_mlops.features.definitions import AGE_BANDS, MODEL_INPUT_COLUMNS
from healthcare_mlops.features.training_range import outside_range_reason
from healthcare_mlops.modeling.risk import RiskBand, risk_category
from healthcare_mlops.monitoring.contract import AlertSeverity
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.scoring.contract import PARTITION_COLUMN, REASON_SEPARATOR
from healthcare_mlops.scoring.rules import CRITICAL_RISK, LOW_CONFIDENCE, ScoringThresholds
from healthcare_mlops.parameters import scoring_thresholds
from healthcare_mlops.settings import Settings, resolve_settings

SCORING_DAY = dt.date(2026, 1, 31)
MONITORING_RUNS = 30


# -- tables -----------------------------------------------------------------------------------

def explanation_columns(members: dict, predicted: np.ndarray) -> dict:
    """Contract-shaped explanations that add up: rough per-input effects, bmi taking the remainder."""
    frame = pd.DataFrame({c: members[c] for c in MODEL_INPUT_COLUMNS})
    base = float(predicted.mean())
    effects = {"age": 265.0 * (frame["age"] - frame["age"].mean()),
               "children": 500.0 * (frame["children"] - frame["children"].mean()),
               "smoker": 23_000.0 * (frame["smoker"].astype(float) - frame["smoker"].mean()),
               "region": frame["region"].map({"southeast": 300.0}).fillna(-100.0)}
    effects["bmi"] = predicted - base - sum(effects.values())
    contributions = np.column_stack([np.asarray(effects[c], dtype=float) for c in MODEL_INPUT_COLUMNS])
    return {"base_charges": np.full(len(predicted), base), "floor_adjustment": np.zeros(len(predicted)),
            **{f"contribution_{c}": contributions[:, i] for i, c in enumerate(MODEL_INPUT_COLUMNS)},
            TOP_REASONS_COLUMN: top_reasons(frame, contributions, MODEL_INPUT_COLUMNS)}


def prediction_rows(n: int, scoring_date: dt.date, offset: int, rng: np.random.Generator,
                    thresholds: ScoringThresholds) -> pa.Table:
    members = synthetic_members(n, rng)
    predicted = np.maximum(members["annual_charges"] * rng.lognormal(0.0, 0.15, n), thresholds.min_predicted_charges)
    scores = np.clip(100.0 * (np.argsort(np.argsort(predicted)) + 0.5) / n + rng.normal(0, 0.5, n), 0, 100)
    category = risk_category(scores).astype(str)
    width = rng.lognormal(-0.2, 0.5, n)
    lower, upper = predicted * np.maximum(1 - width / 2, 0.05), predicted * (1 + width / 2)
    reasons = np.full(n, "", dtype=object)
    for mask, code in ((category == RiskBand.CRITICAL.value, CRITICAL_RISK),
                       (width > thresholds.review_interval_width_ratio, LOW_CONFIDENCE),
                       (members["bmi"] > 50, outside_range_reason("bmi"))):
        reasons = np.where(mask, np.where(reasons == "", code, reasons + REASON_SEPARATOR + code), reasons)
    explained = explanation_columns(members, predicted)
    flagged = reasons != ""
    reasons[flagged] = join_words(pa.array(reasons[flagged], type=pa.string()),
                                  explained[TOP_REASONS_COLUMN].filter(pa.array(flagged))).to_numpy(zero_copy_only=False)
    scored_at = dt.datetime.combine(scoring_date, dt.time(2, 5), tzinfo=dt.timezone.utc)
    columns = {**explained,
        "patient_natural_key": [f"P{i:09d}" for i in range(offset, offset + n)],
        "scoring_date": np.full(n, scoring_date), "predicted_annual_charges": predicted, "risk_score": scores,
        "risk_category": category, "interval_lower": lower, "interval_upper": upper,
        T.IS_CRITICAL_RISK: category == RiskBand.CRITICAL.value, "requires_review": reasons != "",
        "review_reasons": reasons,
        "age": members["age"], "bmi": members["bmi"], "children": members["children"],
        "smoker": members["smoker"], "region": members["region"], "sex": members["sex"],
        "age_band": members["age_band"], "model_name": np.full(n, "hc_local.insurance.insurance_model"),
        "model_version": np.full(n, "1"), "model_run_id": np.full(n, "bench"), "scored_at": np.full(n, scored_at),
    }
    schema = T.ML_PATIENT_PREDICTIONS_SPEC.arrow_schema()
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema}, schema=schema)


def write_predictions(settings: Settings, total: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    thresholds = scoring_thresholds(settings.variables)
    store = DeltaCatalog(settings)
    sizes = [total // 10, total // 10, total - 2 * (total // 10)]
    offset = 0
    for days_back, size in zip((2, 1, 0), sizes):
        day = SCORING_DAY - dt.timedelta(days=days_back)
        store.write(prediction_rows(size, day, offset, rng, thresholds), T.ML_PATIENT_PREDICTIONS,
                    mode="replace_partition", partition={PARTITION_COLUMN: day})
        offset += size


def _table(spec: T.TableSpec, rows: list[dict]) -> pa.Table:
    schema = spec.arrow_schema()
    return pa.Table.from_pylist([{f.name: row.get(f.name) for f in schema} for row in rows], schema=schema)


def _estimate_rows(common: dict, rng: np.random.Generator, trend: float) -> list[dict]:
    """The window's label-free MAE estimate (column ''), and the labelled batch's realised MAE next
    to its estimate (column 'prediction'), each estimate with its interval rows."""
    rows = []
    for column, mae in (("", 2600 + 900 * trend), ("prediction", 2500 + 700 * trend)):
        estimate = float(rng.normal(mae, 80))
        for suffix, value in (("", estimate), ("_lower", estimate - 260), ("_upper", estimate + 260),
                              ("_n", 1000.0)):
            rows.append({**common, "column_name": column, "metric": f"estimated_mae{suffix}", "value": value,
                         "threshold": None, "status": "info"})
    rows.append({**common, "column_name": "prediction", "metric": "mae", "value": float(rng.normal(2500 + 800 * trend,
                                                                                                    120)),
                 "threshold": None, "status": "info"})
    return rows


def write_monitoring(settings: Settings, seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    drift, fairness, alerts = [], [], []
    features = ("age", "bmi", "children", "smoker", "region", "prediction")
    groups = {"sex": ("female", "male"), "region": REGIONS, "age_band": tuple(label for _, label in AGE_BANDS),
              "smoker": ("false", "true")}
    for index in range(MONITORING_RUNS):
        day = SCORING_DAY - dt.timedelta(days=MONITORING_RUNS - 1 - index)
        run_id = uuid.UUID(bytes=rng.bytes(16)).hex
        at = dt.datetime.combine(day, dt.time(6, 3), tzinfo=dt.timezone.utc)
        trend = index / MONITORING_RUNS
        common = {"run_id": run_id, "window_start": day, "window_end": day, "computed_at": at}
        for column in features:
            psi = float(abs(rng.normal(0.03 + 0.2 * trend * (column in ("bmi", "smoker")), 0.02)))
            status = "stable" if psi < 0.1 else "moderate" if psi <= 0.25 else "significant"
            drift.append({**common, "column_name": column, "metric": "psi", "value": psi, "threshold": 0.25,
                          "status": status})
            for metric in ("js_distance", "ks_statistic", "ks_pvalue", "wasserstein_norm"):
                drift.append({**common, "column_name": column, "metric": metric, "value": float(rng.random() / 5),
                              "threshold": None, "status": "info"})
        composite = float(min(1.0, 0.05 + 0.6 * trend * trend + abs(rng.normal(0, 0.02))))
        drift.append({**common, "column_name": "", "metric": "composite_drift", "value": composite,
                      "threshold": 0.3, "status": "alert" if composite > 0.3 else "ok"})
        drift.append({**common, "column_name": "", "metric": "volume", "value": 1000.0, "threshold": 50.0,
                      "status": "ok"})
        drift += _estimate_rows(common, rng, trend)
        for column, values in groups.items():
            rows = [{**common, "group_column": column, "group_value": value,
                     "n": int(rng.integers(2000, 9000)), "mae": float(rng.normal(2500, 150)),
                     "risk_score_mae": float(rng.normal(7.5, 0.4)),
                     "calibration_ratio": float(rng.normal(0.8, 0.03)),   # an overall shift, as in issue 29
                     "critical_share": float(abs(rng.normal(0.05, 0.01)))} for value in values]
            for row in rows:                             # over the rest's (n-weighted): what the band judges
                rest = [r for r in rows if r is not row]
                row["relative_calibration"] = row["calibration_ratio"] / (
                    sum(r["calibration_ratio"] * r["n"] for r in rest) / sum(r["n"] for r in rest))
            fairness += rows
            if column == "smoker":                       # monitored for shares, not judged for fairness
                continue
            ratio = max(r["mae"] for r in rows) / min(r["mae"] for r in rows)
            worst = max(rows, key=lambda r: abs(r["relative_calibration"] - 1.0))
            drift.append({**common, "column_name": column, "metric": "fairness_mae_ratio", "value": ratio,
                          "threshold": 1.25, "status": "alert" if ratio > 1.25 else "ok"})
            drift.append({**common, "column_name": column, "metric": "calibration_ratio_worst",
                          "value": worst["relative_calibration"], "threshold": None,
                          "group_value": worst["group_value"],
                          "status": "ok" if 0.9 <= worst["relative_calibration"] <= 1.1 else "alert"})
            if column == "sex":
                shares = [r["critical_share"] for r in rows]
                drift.append({**common, "column_name": column, "metric": "critical_share_four_fifths",
                              "value": min(shares) / max(shares), "threshold": 0.8,
                              "status": "ok" if min(shares) / max(shares) >= 0.8 else "flag"})
        if composite > 0.3:
            alerts.append({**common, "alert_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{day}/composite")),
                           "type": "composite_drift",
                           "severity": (AlertSeverity.CRITICAL if composite > 0.45 else AlertSeverity.WARNING).value,
                           "message": f"inputs carrying {composite:.0%} of the feature importance drifted",
                           "column_name": "", "value": composite, "threshold": 0.3, "details": "{}",
                           "created_at": at})
    for index, alert in enumerate(alerts[:-2]):
        alert.update(acknowledged_by="ops@example.com", acknowledged_at=alert["created_at"] + dt.timedelta(hours=2))
    store = DeltaCatalog(settings)
    store.write(_table(T.ML_DRIFT_METRICS_SPEC, drift), T.ML_DRIFT_METRICS, mode="overwrite")
    store.write(_table(T.ML_FAIRNESS_METRICS_SPEC, fairness), T.ML_FAIRNESS_METRICS, mode="overwrite")
    store.write(_table(T.ML_MODEL_ALERTS_SPEC, alerts), T.ML_MODEL_ALERTS, mode="overwrite")


def write_job_runs(settings: Settings) -> None:
    records = []
    run_id = 1_000_000
    for index in range(MONITORING_RUNS):
        day = SCORING_DAY - dt.timedelta(days=MONITORING_RUNS - 1 - index)
        for job_key, hour, seconds in (("batch_inference", 2, 95.0 + index), ("model_monitoring", 6, 140.0 - index)):
            start = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.timezone.utc)
            end = start + dt.timedelta(seconds=seconds)
            run_id += 2
            records.append(RunRecord(run_id=run_id, job_key=job_key, status=SUCCEEDED, trigger="schedule",
                                     start_time=start, end_time=end, parameters="{}"))
            records.append(RunRecord(run_id=run_id + 1, parent_run_id=run_id, job_key=job_key, task_key=job_key,
                                     status=SUCCEEDED, trigger="schedule", start_time=start, end_time=end,
                                     parameters=[]))
    append_runs(settings, records)
    # one run still going (its start row in the audit log, no end row yet): the Jobs page shows it
    record_audit(settings, "model_monitoring", run_id + 2, "schedule")


def register_models(settings: Settings, seed: int) -> None:
    """A small real model: version 1 validated and promoted (champion), version 2 the challenger."""
    import pandas as pd

    from healthcare_mlops.identity import APPROVER, Identity, job_identity
    from healthcare_mlops.modeling.training import train
    from healthcare_mlops.tasks.model_training import log_and_register

    frame = pd.DataFrame(synthetic_members(6000, np.random.default_rng(seed + 2)))
    frame["patient_natural_key"] = [f"BENCH-{i:07d}" for i in range(len(frame))]   # splits hash the member key
    result = train(frame, seed=seed, candidates=("hist_gradient_boosting_poisson",))
    version = {"table": settings.tables.fqn(T.ML_INSURANCE_FEATURES), "as_of_date": "2026-01-01", "delta_version": 0}
    log_and_register(build_runtime(settings), result, version, commit="benchmark")
    governance = build_runtime(settings).governance(job_identity(settings.target))
    if governance.validate("1").passed:
        governance.promote("1", comment="benchmark champion")
    else:   # a small synthetic sample can miss a fairness threshold: an approver overrides, recorded
        build_runtime(settings).governance(Identity("benchmark@localhost", APPROVER)).approve(
            "1", "benchmark champion", override_reason="synthetic benchmark data")
    log_and_register(build_runtime(settings), result, version, commit="benchmark")
    governance.validate("2")


def build_lakehouse(home: Path, predictions: int, seed: int = 7, model: bool = True) -> Settings:
    settings = resolve_settings("local", home)
    write_predictions(settings, predictions, seed)
    write_monitoring(settings, seed)
    write_job_runs(settings)
    if model:
        register_models(settings, seed)
    return settings
