"""``healthcare-mlops alerts``: monitoring alerts for people without the console (list, acknowledge)."""

from __future__ import annotations

import typer

from healthcare_mlops.cli.context import state
from healthcare_mlops.cli.output import Format, ReportFormat, format_option, print_frame, print_json, records

app = typer.Typer(help="Monitoring alerts (ml_model_alerts): list them, acknowledge one.", no_args_is_help=True)


@app.command("list")
def list_alerts(ctx: typer.Context,
                all_alerts: bool = typer.Option(False, "--all", help="Also the acknowledged alerts."),
                limit: int = typer.Option(None, "--limit", min=1, help="At most N alerts (newest first)."),
                fmt: Format = format_option()) -> None:
    """Alerts newest first; by default only those nobody has acknowledged."""
    from healthcare_mlops.monitoring.alerts import list_alerts as read_alerts
    from healthcare_mlops.runtime.catalog import table_catalog

    frame = read_alerts(table_catalog(state(ctx).settings()), include_acknowledged=all_alerts, limit=limit)
    if fmt == Format.table and frame.empty:
        typer.echo("no alerts" if all_alerts else "no unacknowledged alerts")
        return
    if fmt == Format.table:
        typer.echo("\n".join(alert_table(frame)))
        return
    print_frame(frame, fmt)


TABLE_WIDTH = 100
# (header, width) of each alert's first line; the message and what was done follow, wrapped.
ALERT_FIELDS = (("alert_id", 36), ("window_end", 10), ("severity", 8), ("type", 17), ("column_name", 12),
                ("value", 7))


def _shown(value) -> str:
    if value is None or value != value:           # None, NaN, NaT
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def alert_table(frame) -> list[str]:
    """Alerts in at most ``TABLE_WIDTH`` columns: one line of fields, then the whole message and
    who acknowledged / which retrain it started, wrapped and indented (``--format json`` has every column)."""
    import textwrap

    def line(values) -> str:
        return "  ".join(str(v).ljust(w) for v, (_, w) in zip(values, ALERT_FIELDS)).rstrip()

    lines = [line(name for name, _ in ALERT_FIELDS)]
    for alert in frame.to_dict(orient="records"):
        lines.append(line(_shown(alert[name]) for name, _ in ALERT_FIELDS))
        notes = [alert["message"]]
        if _shown(alert["acknowledged_by"]):
            notes.append(f"acknowledged by {alert['acknowledged_by']} at {_shown(alert['acknowledged_at'])}")
        if _shown(alert["retrain_run_id"]):
            notes.append(f"started retrain run {alert['retrain_run_id']}")
        for note in notes:
            lines += textwrap.wrap(str(note), TABLE_WIDTH, initial_indent="    ", subsequent_indent="    ")
    return lines


@app.command("ack")
def ack(ctx: typer.Context,
        alert_id: str = typer.Argument(..., help="The alert's id (see `alerts list`)."),
        comment: str = typer.Option(None, "--comment", help="Why, or what was done (stored with the alert)."),
        fmt: ReportFormat = format_option(ReportFormat)) -> None:
    """Acknowledge an alert (operator role); records who and when."""

    import pandas as pd

    from healthcare_mlops.composition import cli_identity
    from healthcare_mlops.monitoring.alerts import acknowledge
    from healthcare_mlops.runtime.catalog import audit_log, table_catalog

    settings = state(ctx).settings()
    alert = acknowledge(table_catalog(settings), alert_id, cli_identity(settings), audit_log(settings).record_action,
                        comment)
    if fmt == Format.json:
        print_json(records(pd.DataFrame([alert]))[0])
        return
    typer.echo(f"acknowledged {alert['type']} alert {alert['alert_id']} as {alert['acknowledged_by']} "
               f"at {alert['acknowledged_at']}")
