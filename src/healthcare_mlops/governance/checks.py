"""The governance checks: numbers in, verdicts out (docs/definitions.md).

Every check has a value, a threshold, a verdict (pass / fail / warn) and whether it is
hard (blocks promotion) or soft. A value that could not be computed is None, and a
check on None fails: there are no fallback numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from healthcare_mlops.governance.thresholds import GovernanceThresholds
from healthcare_mlops.privacy import prohibited_inputs

PASS, FAIL, WARN = "pass", "fail", "warn"
FAIRNESS_GROUPS = ("sex", "region", "age_band")
LINEAGE_KEYS = ("training_data_version", "git_commit", "run_id")


@dataclass(frozen=True)
class Check:
    name: str
    value: object
    threshold: str
    verdict: str
    hard: bool
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evidence:
    """What the checks judge, all measured on the held-out test set re-scored by the model."""

    metrics: dict                      # r2, mae, risk_score_mae, high_risk_capture (None if not computed)
    groups: list                       # dicts: group_column, group_value, n, mae, calibration_ratio, critical_share
    inputs: list                       # the model's input columns (its signature)
    model_loads: bool
    load_error: str = ""
    champion_mae: float | None = None  # the champion's MAE on the same test set; None without a champion
    lineage: dict = field(default_factory=dict)
    failure: str = ""                  # why the metrics could not be computed, if they could not


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _bound(name: str, value, threshold: float, at_least: bool, hard: bool, reason: str) -> Check:
    sign = ">=" if at_least else "<="
    if _missing(value):
        return Check(name, None, f"{sign} {threshold}", FAIL, hard, f"not computed: {reason or 'no value'}")
    ok = value >= threshold if at_least else value <= threshold
    return Check(name, round(float(value), 6), f"{sign} {threshold}", PASS if ok else FAIL, hard)


def metric_checks(evidence: Evidence, t: GovernanceThresholds) -> list[Check]:
    m, why = evidence.metrics, evidence.failure
    return [
        _bound("r2", m.get("r2"), t.r2_min, True, True, why),
        _bound("risk_score_mae", m.get("risk_score_mae"), t.risk_score_mae_max, False, True, why),
        _bound("high_risk_capture", m.get("high_risk_capture"), t.high_risk_capture_min, True, True, why),
    ]


def prohibited_inputs_check(inputs: list) -> Check:
    found = prohibited_inputs(inputs)
    if not inputs:
        return Check("no_prohibited_inputs", None, "none of: HIPAA identifiers, sex", FAIL, True,
                     "the model's inputs are unknown (no signature)")
    return Check("no_prohibited_inputs", ", ".join(found) or "none", "none of: HIPAA identifiers, sex",
                 FAIL if found else PASS, True, f"inputs: {', '.join(inputs)}")


def fairness_checks(groups: list, t: GovernanceThresholds) -> list[Check]:
    """Per group column: MAE ratio max/min and calibration, judged on groups with n >= the minimum."""
    checks = []
    for column in FAIRNESS_GROUPS:
        rows = [g for g in groups if g["group_column"] == column]
        judged = [g for g in rows if g["n"] >= t.fairness_min_group_size]
        small = [f"{g['group_value']} (n={g['n']})" for g in rows if g["n"] < t.fairness_min_group_size]
        note = f"not judged, under {t.fairness_min_group_size} rows: {', '.join(small)}" if small else ""
        if len(judged) < 2:
            reason = note or f"no groups of '{column}' in the test set"
            checks.append(Check(f"fairness_mae_ratio_{column}", None, f"<= {t.fairness_mae_ratio_max}", FAIL,
                                True, f"fewer than two groups to compare; {reason}"))
        else:
            maes = [g["mae"] for g in judged]
            ratio = max(maes) / min(maes) if min(maes) > 0 else float("inf")
            checks.append(Check(f"fairness_mae_ratio_{column}", round(ratio, 4), f"<= {t.fairness_mae_ratio_max}",
                                PASS if ratio <= t.fairness_mae_ratio_max else FAIL, True, note))
        if judged:
            worst = max(judged, key=lambda g: abs(g["calibration_ratio"] - 1.0))
            inside = all(t.calibration_ratio_min <= g["calibration_ratio"] <= t.calibration_ratio_max
                         for g in judged)
            checks.append(Check(f"calibration_{column}", round(worst["calibration_ratio"], 4),
                                f"{t.calibration_ratio_min}-{t.calibration_ratio_max}", PASS if inside else FAIL,
                                True, f"worst group: {worst['group_value']}" + (f"; {note}" if note else "")))
        else:
            checks.append(Check(f"calibration_{column}", None,
                                f"{t.calibration_ratio_min}-{t.calibration_ratio_max}", FAIL, True,
                                "not computed: no group large enough"))
    return checks


def four_fifths_check(groups: list, t: GovernanceThresholds) -> Check:
    """Share flagged critical per sex; the lower over the higher. A flag, not a verdict (soft)."""
    rows = [g for g in groups if g["group_column"] == "sex"]
    shares = {g["group_value"]: g["critical_share"] for g in rows}
    threshold = f">= {t.four_fifths_min}"
    if len(shares) < 2 or max(shares.values()) == 0:
        return Check("critical_share_four_fifths_sex", None, threshold, WARN, False,
                     f"critical shares by sex: {shares}")
    ratio = min(shares.values()) / max(shares.values())
    detail = ", ".join(f"{k}: {v:.3f}" for k, v in sorted(shares.items()))
    return Check("critical_share_four_fifths_sex", round(ratio, 4), threshold,
                 PASS if ratio >= t.four_fifths_min else WARN, False, f"critical share by sex: {detail}")


def champion_check(mae: float | None, champion_mae: float | None, t: GovernanceThresholds) -> Check:
    threshold = f"<= champion MAE x {1 + t.champion_mae_tolerance:g}"
    if champion_mae is None:
        return Check("champion_comparison", None if _missing(mae) else round(mae, 2), threshold,
                     FAIL if _missing(mae) else PASS, True, "no champion yet")
    if _missing(mae):
        return Check("champion_comparison", None, threshold, FAIL, True, "challenger MAE not computed")
    limit = champion_mae * (1 + t.champion_mae_tolerance)
    return Check("champion_comparison", round(mae / champion_mae, 4), threshold,
                 PASS if mae <= limit else FAIL, True,
                 f"challenger MAE {mae:,.0f} vs champion MAE {champion_mae:,.0f} on the same test set")


def loads_check(evidence: Evidence) -> Check:
    return Check("loads_and_predicts", evidence.model_loads, "loads from the registry, predicts its input example",
                 PASS if evidence.model_loads else FAIL, True, evidence.load_error)


def lineage_check(lineage: dict) -> Check:
    missing = [key for key in LINEAGE_KEYS if not lineage.get(key) or lineage.get(key) == "unknown"]
    return Check("lineage", "complete" if not missing else f"missing: {', '.join(missing)}",
                 ", ".join(LINEAGE_KEYS), FAIL if missing else PASS, True,
                 "; ".join(f"{k}={lineage.get(k)}" for k in LINEAGE_KEYS))


def run_checks(evidence: Evidence, thresholds: GovernanceThresholds) -> list[Check]:
    """Every check, in the order the checklist shows them."""
    return [
        *metric_checks(evidence, thresholds),
        prohibited_inputs_check(evidence.inputs),
        *fairness_checks(evidence.groups, thresholds),
        four_fifths_check(evidence.groups, thresholds),
        champion_check(evidence.metrics.get("mae"), evidence.champion_mae, thresholds),
        loads_check(evidence),
        lineage_check(evidence.lineage),
    ]


def hard_failures(checks: list[Check]) -> list[Check]:
    """Hard checks that do not pass."""
    return [c for c in checks if c.hard and c.verdict != PASS]
