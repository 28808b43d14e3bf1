"""The model card reads as a document: metrics by split in words, groups, checks, limitations."""

from __future__ import annotations

import pandas as pd
from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunTag

from healthcare_mlops.governance.model_card import render_model_card


def _run() -> Run:
    metrics = {"cv_mae": 2429.4, "cv_r2": 0.8478, "test_mae": 2208.1, "test_rmse": 4226.0, "test_r2": 0.8688,
               "test_interval_coverage": 0.9237, "cv_calibration": 1.001, "test_mae_female": 2300.0}
    info = RunInfo(run_id="r1", experiment_id="0", user_id="u", status="FINISHED", start_time=0, end_time=1,
                   lifecycle_stage="active")
    data = RunData(metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                   params=[Param("train_rows", "4781"), Param("test_rows", "1219"), Param("candidate", "hgb")],
                   tags=[RunTag("training_data_version", '{"table": "t", "as_of_date": "2026-01-01"}')])
    return Run(info, data)


def test_the_card_names_each_split_and_shows_money_in_usd():
    checks = [{"name": "champion_comparison", "value": 2433.15, "threshold": "<= 2,555 USD", "verdict": "pass",
               "hard": True},
              {"name": "calibration_sex", "value": 0.99, "threshold": None, "verdict": "pass", "hard": True}]
    groups = [{"group_column": "age_band", "group_value": "18-29", "n": 1458, "mae": 2455.0,
               "calibration_ratio": 1.001, "critical_share": 0.0027}]
    card = render_model_card("m", "2", _run(), checks, groups, pd.DataFrame())
    metrics = card.split("#### Metrics")[1].split("####")[0]
    assert "| Metric | Cross-validation (5 folds, training members) | Held-out test set |" in metrics
    assert "| Mean absolute error (USD) | $2,429 | $2,208 |" in metrics       # cv_mae is cross-validation
    assert "| Root mean squared error (USD) | — | $4,226 |" in metrics
    assert "cv_" not in metrics and "test_" not in metrics and "female" not in metrics
    assert len(metrics.strip().splitlines()) <= 10                             # short, not ~30 raw rows
    assert "| age band: 18-29 | 1,458 | $2,455 | 1.001 | 0.3% |" in card
    assert "| champion comparison | $2,433 MAE | <= 2,555 USD | pass (hard) |" in card
    assert "4,781 training members, 1,219 held out for testing" in card
    assert "2 of 2 checks pass; no hard check fails." in card
    assert "None" not in card and "#### Intended use" in card and "#### Limitations" in card
    assert not any(line.startswith(("# ", "## ")) for line in card.splitlines())   # no huge headings
