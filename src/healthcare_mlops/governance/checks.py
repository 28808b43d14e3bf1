"""The governance checks: numbers in, verdicts out (docs/definitions.md).

Every check has a value, a threshold, a verdict and whether it is hard (blocks promotion)
or soft. Verdicts: pass; fail (a hard fail blocks); warn (reported, never blocks);
refer (a hard floor that the champion misses too on the same rows: an approver decides,
with both values); "too few members" (a group check without enough members to judge).
A value that could not be computed is None, and a check on None fails: there are no
fallback numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from healthcare_mlops.features.definitions import FAIRNESS_GROUP_COLUMNS, PROTECTED_ATTRIBUTES
from healthcare_mlops.governance import fairness as fx
from healthcare_mlops.governance.group_evidence import GroupEvidence, as_group_evidence
from healthcare_mlops.governance.thresholds import GovernanceThresholds
from healthcare_mlops.privacy import prohibited_inputs

PASS, FAIL, WARN, REFER, TOO_FEW = "pass", "fail", "warn", "refer", fx.TOO_FEW
FAIRNESS_GROUPS = FAIRNESS_GROUP_COLUMNS
LINEAGE_KEYS = ("training_data_version", "git_commit", "run_id")
FLOOR_CHECKS = ("r2", "risk_score_mae", "high_risk_capture")


@dataclass(frozen=True)
class Check:
    name: str
    value: object
    threshold: str
    verdict: str
    hard: bool
    detail: str = ""
    interval: list | None = None     # [low, high]: the value's bootstrap confidence interval
    group: str = ""                  # which group the value belongs to (group checks)
    kind: str = ""                   # performance, fairness (protected), rating factor, model, lineage

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evidence:
    """What the checks judge.

    ``metrics``: headline metrics of the held-out test split re-scored through the
    registry. ``oof``: the out-of-fold evidence of every training member, as the training
    run logged it (``GroupEvidence``: bootstrap sums per group, no member rows), or the
    rows themselves (group columns, actual, predicted, critical flag). ``champion_metrics``: the
    champion's metrics on the same test rows (None without a champion)."""

    metrics: dict                      # r2, mae, risk_score_mae, high_risk_capture, calibration
    oof: GroupEvidence | pd.DataFrame | None   # the group checks' evidence
    inputs: list                       # the model's input columns (its signature)
    model_loads: bool
    load_error: str = ""
    champion_metrics: dict | None = None
    lineage: dict = field(default_factory=dict)
    failure: str = ""                  # why the metrics could not be computed, if they could not
    oof_failure: str = ""              # why the out-of-fold evidence could not be read, if it could not


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _floor(name: str, value, threshold: float, at_least: bool, reason: str, champion_value=None,
           rows: int | None = None) -> Check:
    """A hard floor; when the champion misses it too on the same rows, refer to an approver."""
    sign = ">=" if at_least else "<="
    if _missing(value):
        return Check(name, None, f"{sign} {threshold}", FAIL, True, f"not computed: {reason or 'no value'}",
                     kind="performance")
    ok = value >= threshold if at_least else value <= threshold
    if ok:
        return Check(name, round(float(value), 6), f"{sign} {threshold}", PASS, True, kind="performance")
    if _missing(champion_value):
        return Check(name, round(float(value), 6), f"{sign} {threshold}", FAIL, True, "no champion to compare",
                     kind="performance")
    champion_ok = champion_value >= threshold if at_least else champion_value <= threshold
    detail = (f"challenger {value:.4g} vs champion {champion_value:.4g} on the same {rows} held-out rows")
    if champion_ok:
        return Check(name, round(float(value), 6), f"{sign} {threshold}", FAIL, True,
                     detail + "; the champion meets the floor", kind="performance")
    return Check(name, round(float(value), 6), f"{sign} {threshold}", REFER, True,
                 detail + "; both miss it on this population, so an approver decides", kind="performance")


def metric_checks(evidence: Evidence, t: GovernanceThresholds) -> list[Check]:
    m, why, champ = evidence.metrics, evidence.failure, evidence.champion_metrics or {}
    rows = m.get("test_rows")
    return [
        _floor("r2", m.get("r2"), t.r2_min, True, why, champ.get("r2"), rows),
        _floor("risk_score_mae", m.get("risk_score_mae"), t.risk_score_mae_max, False, why,
               champ.get("risk_score_mae"), rows),
        _floor("high_risk_capture", m.get("high_risk_capture"), t.high_risk_capture_min, True, why,
               champ.get("high_risk_capture"), rows),
    ]


def overall_calibration_check(evidence: Evidence, t: GovernanceThresholds) -> Check:
    """Mean predicted / mean actual over everyone: a performance matter, reported, not a fairness verdict."""
    value = evidence.metrics.get("calibration")
    band = f"{t.calibration_ratio_min}-{t.calibration_ratio_max}"
    if _missing(value):
        return Check("calibration_overall", None, band, WARN, False, "not computed", kind="performance")
    inside = t.calibration_ratio_min <= value <= t.calibration_ratio_max
    how = "over" if value > 1 else "under"
    return Check("calibration_overall", round(float(value), 4), band, PASS if inside else WARN, False,
                 f"the model {how}-predicts everyone's total by {abs(value - 1):.1%} (a performance matter: "
                 "it moves every group alike)", kind="performance")


def prohibited_inputs_check(inputs: list) -> Check:
    found = prohibited_inputs(inputs)
    if not inputs:
        return Check("no_prohibited_inputs", None, "none of: HIPAA identifiers, sex", FAIL, True,
                     "the model's inputs are unknown (no signature)", kind="model")
    return Check("no_prohibited_inputs", ", ".join(found) or "none", "none of: HIPAA identifiers, sex",
                 FAIL if found else PASS, True, f"inputs: {', '.join(inputs)}", kind="model")


def _small_groups(stats: dict, judged: np.ndarray) -> str:
    small = [f"{label} (n={n})" for label, n, ok in zip(stats["labels"], stats["n"], judged) if not ok]
    return f"too few members to judge: {', '.join(small)}" if small else ""


def _group_check(name: str, column: str, result, threshold: str, hard: bool, small: str, describe) -> Check:
    kind = "fairness (protected attribute)" if hard else "rating factor (reported, never blocks)"
    if result is None:
        return Check(name, None, threshold, TOO_FEW, hard, small or f"fewer than two groups of {column}", kind=kind)
    verdict = result.verdict if hard or result.verdict != FAIL else WARN
    detail = describe(result) + (f"; {small}" if small else "")
    return Check(name, round(result.value, 4), threshold, verdict, hard, detail,
                 interval=[round(result.ci_low, 4), round(result.ci_high, 4)], group=result.group, kind=kind)


def fairness_checks(oof: GroupEvidence | pd.DataFrame | None, t: GovernanceThresholds, columns=FAIRNESS_GROUPS,
                    missing_reason: str = "") -> list[Check]:
    """Per group column: calibration relative to the rest and scale-aware error parity, with intervals."""
    oof = as_group_evidence(oof, columns, t.fairness_bootstrap_samples)
    if oof is not None and oof.samples < t.fairness_bootstrap_samples:
        missing_reason = (f"the evidence holds {oof.samples} bootstrap samples, fewer than "
                          f"fairness_bootstrap_samples = {t.fairness_bootstrap_samples}")
        oof = None
    checks = []
    level = f"{t.fairness_ci_level:.0%}"
    for column in columns:
        hard = column in PROTECTED_ATTRIBUTES
        names = (f"calibration_{column}", f"fairness_mae_ratio_{column}")
        band = f"{t.calibration_ratio_min}-{t.calibration_ratio_max}"
        if oof is None or column not in oof.columns:
            reason = (missing_reason or "no out-of-fold evidence") if oof is None else f"no '{column}' in the evidence"
            checks += [Check(n, None, th, FAIL if hard else WARN, hard, f"not computed: {reason}")
                       for n, th in zip(names, (band, f"<= {t.fairness_mae_ratio_max}"))]
            continue
        stats = oof.statistics(column, t.fairness_bootstrap_samples, t.fairness_ci_level)
        judged = stats["n"] >= t.fairness_min_group_size
        small = _small_groups(stats, judged)
        calibration = fx.calibration_verdict(stats, judged, t.calibration_ratio_min, t.calibration_ratio_max)
        parity = fx.error_parity_verdict(stats, judged, t.fairness_mae_ratio_max)
        checks.append(_group_check(names[0], column, calibration, band, hard, small, lambda r: (
            f"{column} = {r.group}: mean predicted / mean actual is {r.value:.3f} x that of everyone else "
            f"({level} interval {r.ci_low:.3f}-{r.ci_high:.3f})")))
        checks.append(_group_check(names[1], column, parity, f"<= {t.fairness_mae_ratio_max}", hard, small,
                                   lambda r: (f"error relative to mean charges, {r.group}: {r.value:.2f} x "
                                              f"({level} interval {r.ci_low:.2f}-{r.ci_high:.2f})")))
    return checks


def four_fifths_check(oof: GroupEvidence | pd.DataFrame | None, t: GovernanceThresholds) -> Check:
    """Share flagged critical per sex; the lower over the higher. A flag, not a verdict (soft)."""
    threshold = f">= {t.four_fifths_min}"
    evidence = as_group_evidence(oof, ("sex",), 0)
    shares = None if evidence is None else evidence.critical_shares("sex")
    if shares is None:
        return Check("critical_share_four_fifths_sex", None, threshold, WARN, False, "not computed: no evidence",
                     kind="fairness flag")
    if len(shares) < 2 or max(shares.values()) == 0:
        return Check("critical_share_four_fifths_sex", None, threshold, WARN, False,
                     f"critical shares by sex: {shares}", kind="fairness flag")
    ratio = min(shares.values()) / max(shares.values())
    detail = ", ".join(f"{k}: {v:.1%}" for k, v in sorted(shares.items()))
    return Check("critical_share_four_fifths_sex", round(ratio, 4), threshold,
                 PASS if ratio >= t.four_fifths_min else WARN, False, f"share flagged critical by sex: {detail}",
                 kind="fairness flag")


def champion_check(mae: float | None, champion_mae: float | None, t: GovernanceThresholds,
                   rows: int | None = None) -> Check:
    """Challenger MAE (USD) against the champion's MAE on the same held-out rows, in USD."""
    if champion_mae is None:
        return Check("champion_comparison", None if _missing(mae) else round(mae, 2),
                     f"<= champion MAE x {1 + t.champion_mae_tolerance:g}", FAIL if _missing(mae) else PASS, True,
                     "no champion yet" + ("" if _missing(mae) else f"; challenger MAE {mae:,.0f} USD"),
                     kind="performance")
    limit = champion_mae * (1 + t.champion_mae_tolerance)
    threshold = f"<= {limit:,.0f} USD (champion MAE x {1 + t.champion_mae_tolerance:g})"
    if _missing(mae):
        return Check("champion_comparison", None, threshold, FAIL, True, "challenger MAE not computed",
                     kind="performance")
    return Check("champion_comparison", round(mae, 2), threshold, PASS if mae <= limit else FAIL, True,
                 f"MAE on the same {rows} held-out rows: challenger {mae:,.0f} USD, champion "
                 f"{champion_mae:,.0f} USD; ratio challenger / champion {mae / champion_mae:.3f} (limit "
                 f"{1 + t.champion_mae_tolerance:g})", kind="performance")


def loads_check(evidence: Evidence) -> Check:
    return Check("loads_and_predicts", evidence.model_loads, "loads from the registry, predicts its input example",
                 PASS if evidence.model_loads else FAIL, True, evidence.load_error, kind="model")


def lineage_check(lineage: dict) -> Check:
    missing = [key for key in LINEAGE_KEYS if not lineage.get(key) or lineage.get(key) == "unknown"]
    return Check("lineage", "complete" if not missing else f"missing: {', '.join(missing)}",
                 ", ".join(LINEAGE_KEYS), FAIL if missing else PASS, True,
                 "; ".join(f"{k}={lineage.get(k)}" for k in LINEAGE_KEYS), kind="lineage")


def run_checks(evidence: Evidence, thresholds: GovernanceThresholds) -> list[Check]:
    """Every check, in the order the checklist shows them."""
    return [
        *metric_checks(evidence, thresholds),
        overall_calibration_check(evidence, thresholds),
        prohibited_inputs_check(evidence.inputs),
        *fairness_checks(evidence.oof, thresholds, missing_reason=evidence.oof_failure),
        four_fifths_check(evidence.oof, thresholds),
        champion_check(evidence.metrics.get("mae"), (evidence.champion_metrics or {}).get("mae"), thresholds,
                       evidence.metrics.get("test_rows")),
        loads_check(evidence),
        lineage_check(evidence.lineage),
    ]


def hard_failures(checks: list[Check]) -> list[Check]:
    """Hard checks that fail (these block promotion unless an approver overrides)."""
    return [c for c in checks if c.hard and c.verdict == FAIL]


def referrals(checks: list[Check]) -> list[Check]:
    """Hard floors the champion misses too on the same rows: an approver decides."""
    return [c for c in checks if c.hard and c.verdict == REFER]


def _limits(threshold: str) -> tuple[float, float] | None:
    """The band a threshold string allows ("<= 1.25", ">= 0.8", "0.9-1.1"), or None when it is not numeric."""
    text = str(threshold or "").replace(",", "").strip()
    if match := re.fullmatch(r"(<=|>=)\s*(-?[\d.]+)(?:\s.*)?", text):
        value = float(match.group(2))
        return (-math.inf, value) if match.group(1) == "<=" else (value, math.inf)
    if match := re.fullmatch(r"(-?[\d.]+)\s*-\s*(-?[\d.]+)", text):
        return float(match.group(1)), float(match.group(2))
    return None


def _consequence(verdict: str, hard: bool) -> str:
    """What the verdict does to promotion: only a hard fail blocks."""
    if verdict == FAIL and hard:
        return "blocks promotion"
    return "a warning, does not block" if hard else "reported only, never blocks"


def verdict_words(verdict: str, hard: bool, estimate, interval, threshold: str) -> str:
    """A verdict in words, from the same fields as its numbers: whether the estimate and the whole
    interval lie inside or beyond the threshold decide the words (a real difference or maybe chance);
    the verdict and hard/soft decide only the consequence. So a soft check whose whole interval is
    beyond its limit reads "a real difference", never "may be chance"."""
    limits, threshold = _limits(threshold), threshold or "the threshold"
    if verdict == TOO_FEW:
        return "Not judged: too few members."
    if verdict == REFER:
        return f"Below the floor ({threshold}), but so is the champion on the same rows: an approver decides."
    consequence = _consequence(verdict, hard)
    numeric = isinstance(estimate, (int, float)) and not isinstance(estimate, bool) and not _missing(estimate)
    if limits is None or not numeric:
        if verdict == PASS:
            return f"Meets {threshold}."
        return f"No value to judge ({consequence})." if _missing(estimate) else \
            f"Does not meet {threshold} ({consequence})."
    low, high = limits
    estimate_inside = low <= estimate <= high
    if not interval:
        return f"Meets {threshold}." if estimate_inside else f"Outside {threshold} ({consequence})."
    lo, hi = sorted(float(v) for v in interval)
    if lo >= low and hi <= high:
        return f"Within {threshold}, and so is its whole interval."
    if hi < low or lo > high:
        return f"The whole interval lies beyond {threshold}: a real difference, not chance ({consequence})."
    if estimate_inside:
        return f"Within {threshold}, but its interval reaches beyond: too few members to be sure."
    return (f"The estimate is beyond {threshold} but its interval reaches back inside: it may be chance; "
            f"watch it ({consequence}).")


def in_words(check: dict) -> str:
    """A check's verdict as a model owner reads it: which group, how far, how sure (``verdict_words``)."""
    detail = check.get("detail")
    if check.get("verdict") == TOO_FEW:
        return f"Not judged: {detail or 'too few members'}."
    words = verdict_words(check.get("verdict"), bool(check.get("hard")), check.get("value"), check.get("interval"),
                          check.get("threshold"))
    return f"{detail}. {words}" if detail else words
