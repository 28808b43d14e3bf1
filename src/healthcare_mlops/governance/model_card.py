"""The model card: a Markdown page attached to every registered version."""

from __future__ import annotations

import json

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
    "member flagged `requires_review`.\n"
    "- Sex is excluded as an input (not an ACA rating factor) but fairness by sex is reported.")


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "_none_\n"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join("" if row.get(c) is None else
                                        (f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]))
                                        for c in columns) + " |")
    return "\n".join(lines) + "\n"


def render_model_card(model_name: str, version: str, run, checks: list[dict], groups: list[dict],
                      history: pd.DataFrame) -> str:
    """Markdown with intended use, data, features, metrics overall and per group, checks, history."""
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    inputs = tags.get("model_inputs", ",".join(MODEL_INPUT_COLUMNS)).split(",")
    excluded = sorted(set(PROHIBITED_RATING_FACTORS) | {"name", "ssn", "member_id", "zip_code", "date_of_birth"})
    data_version = json.loads(tags.get("training_data_version", "{}") or "{}")
    overall = [{"metric": k, "value": v} for k, v in sorted(metrics.items())
               if k.startswith(("cv_", "test_")) and k.count("_") <= 4 and not k.startswith("test_mae_")]
    events = history.to_dict("records") if not history.empty else []
    return "\n".join([
        f"# Model card: {model_name} version {version}",
        "", "## Intended use", INTENDED_USE,
        "", "## Training data",
        f"Table `{data_version.get('table', '?')}` as of {data_version.get('as_of_date', '?')} "
        f"(Delta version {data_version.get('delta_version', '?')}); {params.get('train_rows', '?')} training and "
        f"{params.get('test_rows', '?')} held-out test rows; git commit `{tags.get('git_commit', '?')}`; "
        f"run `{run.info.run_id}`.",
        "", "## Features",
        f"Inputs: {', '.join(inputs)}; engineered inside the model: age band score, bmi category, "
        "smoker x obesity, family size category.",
        f"Deliberately excluded: {', '.join(excluded)} (HIPAA identifiers and sex, not an allowed rating factor).",
        "", f"## Model\nSelected candidate: `{params.get('candidate', '?')}` "
        f"({params.get('selection_rule', 'by 5-fold CV')}); split and folds by a salted hash of "
        f"`{params.get('split_key', '?')}` (salt `{params.get('split_salt', '?')}`).",
        "", "## Metrics (held-out test set)", _table(overall, ["metric", "value"]),
        "## Metrics per group (out-of-fold, every training member)",
        _table(groups, ["group_column", "group_value", "n", "mae", "relative_mae", "calibration_ratio",
                        "critical_share"]),
        "## Prediction intervals",
        f"90 % intervals, {params.get('interval_method', 'split conformal')}; held-out coverage "
        f"{metrics.get('test_interval_coverage', float('nan')):.3f}, mean width "
        f"{metrics.get('test_interval_width_ratio', float('nan')):.2f} x a constant-width interval.",
        "", "## Governance checks", _table(checks, ["name", "value", "interval", "threshold", "verdict", "hard",
                                                    "detail"]),
        "## Lineage", _table(lineage_rows(tags), ["item", "value"]),
        "## Limitations", LIMITATIONS,
        "", "## Governance history",
        _table(events, ["event_time", "action", "actor", "role", "comment", "override_reason"]),
    ])
