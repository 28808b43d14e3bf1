"""The model card: a short Markdown document attached to every registered version.

Built from the version's recorded numbers (its training run's parameters, metrics and tags,
the governance checks, the out-of-fold group metrics and the audit history) by
``render_model_card``; governance stores it as the version's description (which the
console's Governance page shows) and as the run's artifact ``model_card.md``.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from healthcare_mlops.features.definitions import MODEL_INPUT_COLUMNS
from healthcare_mlops.governance.lineage import lineage_rows
from healthcare_mlops.privacy import PROHIBITED_RATING_FACTORS

INTENDED_USE = (
    "Estimates a member's annual medical charges (USD) and ranks the member on a 0-100 risk score "
    "against the training population, to prioritise care-management outreach and review. Users: "
    "analysts and care managers through the operations console; model owners approve versions.")
LIMITATIONS = (
    "- Trained on one as-of date's membership; relationships can drift (see the Drift page).\n"
    "- Charges are right-skewed: rare very large claims are under-predicted; the 90 % interval "
    "says how uncertain each estimate is.\n"
    "- Not for pricing or eligibility decisions about an individual; a person reviews every "
    "member flagged for review.\n"
    "- Sex is excluded as an input (not an ACA rating factor) but fairness by sex is reported.")
# metric (without its cv_ / test_ prefix) -> (words, format)
METRICS = (
    ("mae", "Mean absolute error (USD)", "usd"),
    ("rmse", "Root mean squared error (USD)", "usd"),
    ("r2", "R² (share of variance explained)", "number"),
    ("risk_score_mae", "Risk-score mean absolute error (points of 100)", "number"),
    ("high_risk_capture", "Share of the truly high-cost members flagged high risk", "percent"),
    ("calibration", "Mean predicted / mean actual", "number"),
    ("interval_coverage", "Members inside their 90 % interval", "percent"),
    ("interval_width_ratio", "Interval width / a constant-width interval", "number"),
)
SPLITS = (("cv_", "Cross-validation (5 folds, training members)"), ("test_", "Held-out test set"))


def _format(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return {"usd": f"${value:,.0f}", "percent": f"{value:.1%}"}.get(kind, f"{value:.3f}")


def _table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "_none recorded_\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def metrics_table(metrics: dict) -> str:
    """One row per metric, one column per split (cross-validation, held-out test), in words with units."""
    rows = [[words, *(_format(metrics.get(prefix + name), kind) for prefix, _ in SPLITS)]
            for name, words, kind in METRICS if any(prefix + name in metrics for prefix, _ in SPLITS)]
    return _table(["Metric", *(label for _, label in SPLITS)], rows)


def groups_table(groups: list[dict]) -> str:
    """Out-of-fold metrics per group: members, MAE, calibration, share flagged critical."""
    rows = [[f"{g.get('group_column', '').replace('_', ' ')}: {g.get('group_value', '')}",
             f"{int(g['n']):,}" if g.get("n") is not None else "—", _format(g.get("mae"), "usd"),
             _format(g.get("calibration_ratio"), "number"), _format(g.get("critical_share"), "percent")]
            for g in groups]
    return _table(["Group", "Members", "Mean absolute error (USD)", "Mean predicted / mean actual",
                   "Share flagged critical"], rows)


def _check_value(check: dict) -> str:
    """The champion comparison is an MAE in USD (its threshold says the champion's); the rest as recorded."""
    value = check.get("value")
    if value is None:
        return "—"
    return f"${value:,.0f} MAE" if check["name"] == "champion_comparison" else str(value)


def _count(text) -> str:
    return f"{int(text):,}" if str(text).isdigit() else str(text)


def checks_summary(checks: list[dict]) -> str:
    """How many checks pass, which hard checks fail, then one short row per check."""
    failing = [c["name"] for c in checks if c.get("hard") and c.get("verdict") == "fail"]
    passed = sum(c.get("verdict") == "pass" for c in checks)
    head = (f"{passed} of {len(checks)} checks pass; "
            + (f"hard checks failing (block promotion unless an approver overrides): {', '.join(failing)}."
               if failing else "no hard check fails.")) if checks else "Not validated yet."
    rows = [[c["name"].replace("_", " "), _check_value(c),
             str(c.get("threshold") or "not set"), f"{c.get('verdict', '')}{' (hard)' if c.get('hard') else ''}"]
            for c in checks]
    return head + "\n\n" + _table(["Check", "Value", "Threshold", "Verdict"], rows)


CURVE_PREFIX = "learning_curve_"


def learning_curve_section(params: dict, metrics: dict) -> str:
    """The candidates' CV MAE at each sample size (``learning_curve_<rows>_<candidate>_cv_mae`` metrics):
    the evidence that the choice made on the capped sample does not depend on the cap."""
    points = {}
    for key, value in metrics.items():
        if key.startswith(CURVE_PREFIX) and key.endswith("_cv_mae"):
            rows, _, candidate = key[len(CURVE_PREFIX):-len("_cv_mae")].partition("_")
            points.setdefault(candidate, {})[int(rows)] = value
    if not points:
        return "No learning curve was logged with this version (trained before candidates were compared on a sample)."
    sizes = sorted({n for by_size in points.values() for n in by_size})
    rows = [[f"`{name}`{' (chosen)' if name == params.get('candidate') else ''}",
             *[_format(by_size[n], "usd") if n in by_size else "" for n in sizes]]
            for name, by_size in sorted(points.items())]
    head = (f"Candidates compared on {_count(params.get('selection_rows', '?'))} training members (a member-hash "
            f"sample capped at {params.get('selection_cap', '?')}); CV MAE at nested samples of each size:")
    return head + "\n\n" + _table(["Candidate", *[f"{n:,} rows" for n in sizes]], rows)


def render_model_card(model_name: str, version: str, run, checks: list[dict], groups: list[dict],
                      history: pd.DataFrame) -> str:
    """Markdown: intended use, data, model, metrics by split, groups, checks, limitations, history."""
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    inputs = tags.get("model_inputs", ",".join(MODEL_INPUT_COLUMNS)).split(",")
    excluded = sorted(set(PROHIBITED_RATING_FACTORS) | {"name", "ssn", "member_id", "zip_code", "date_of_birth"})
    data_version = json.loads(tags.get("training_data_version", "{}") or "{}")
    events = [[str(e.get("event_time", ""))[:16], str(e.get("action", "")), str(e.get("actor", "")),
               str(e.get("comment") or "")] for e in (history.to_dict("records") if not history.empty else [])]
    return "\n".join([
        f"### Model card: `{model_name}` version {version}",
        "", "#### Intended use", INTENDED_USE,
        "", "#### Data",
        f"Table `{data_version.get('table', '?')}` as of {data_version.get('as_of_date', '?')} "
        f"(Delta version {data_version.get('delta_version', '?')}): {_count(params.get('train_rows', '?'))} "
        f"training members, {_count(params.get('test_rows', '?'))} held out for testing, split by a salted hash of "
        f"`{params.get('split_key', '?')}`. Inputs: {', '.join(inputs)}. Deliberately excluded: "
        f"{', '.join(excluded)} (HIPAA identifiers, and sex: not an allowed rating factor).",
        "", "#### Model",
        f"`{params.get('candidate', '?')}` ({params.get('selection_rule', 'chosen by 5-fold cross-validation')}); "
        f"90 % prediction intervals by {params.get('interval_method', 'split conformal')}. Training run "
        f"`{run.info.run_id}`, git commit `{tags.get('git_commit', '?')}`.",
        "", "#### Learning curve (how the candidate was chosen)", learning_curve_section(params, metrics),
        "", "#### Metrics", metrics_table(metrics),
        "#### Groups (out-of-fold predictions of every training member)", groups_table(groups),
        "#### Governance checks", checks_summary(checks),
        "#### Lineage (what `healthcare-mlops governance reproduce` rebuilds it from)",
        _table(["Item", "Value"], [[str(r["item"]), str(r["value"])] for r in lineage_rows(tags)]),
        "#### Limitations", LIMITATIONS,
        "", "#### Governance history", _table(["When (UTC)", "Action", "Who", "Comment"], events),
    ])
