"""What a monitoring run prints: the window, the drift of each input, the performance batch, the alerts."""

from __future__ import annotations

REPORTED_METRICS = ("psi", "composite_drift")


def summary_lines(summary: dict, drift_rows: list[dict]) -> list[str]:
    """The run's report, one line each (the task prints them; tests read them)."""
    lines = [f"model_monitoring window {summary['window_start']}..{summary['window_end']} (run {summary['run_id']}): "
             f"{summary['volume']} predictions vs the training reference of version {summary['reference_version']}"]
    for row in drift_rows:
        if row["metric"] in REPORTED_METRICS:
            value = row["value"] if row["value"] is not None else float("nan")
            lines.append(f"  {row['column_name'] or '(batch)':12} {row['metric']:16} {value:8.4f}  {row['status']}")
    batch = summary["performance_batch"]
    lines.append(f"  performance: predictions of {batch['scoring_date']} against charges of {batch['label_date']}"
                 if batch else "  performance: pending (no scored batch has later charges yet)")
    if not summary["alerts"]:
        lines.append("no alerts")
    lines += [f"ALERT {a['severity']:8} {a['type']:18} {a['alert_id']}  {a['message']}" for a in summary["alerts"]]
    return lines
