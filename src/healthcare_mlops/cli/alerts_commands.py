"""``healthcare-mlops alerts``: monitoring alerts for people without the console (list, acknowledge)."""

from __future__ import annotations

import typer

from healthcare_mlops.cli.context import state
from healthcare_mlops.cli.output import Format, print_frame, print_json, records

app = typer.Typer(help="Monitoring alerts (ml_model_alerts): list them, acknowledge one.", no_args_is_help=True)


@app.command("list")
def list_alerts(ctx: typer.Context,
                all_alerts: bool = typer.Option(False, "--all", help="Also the acknowledged alerts."),
                limit: int = typer.Option(None, "--limit", min=1, help="At most N alerts (newest first)."),
                fmt: Format = typer.Option(Format.table, "--format", help="table, csv or json.")) -> None:
    """Alerts newest first; by default only those nobody has acknowledged."""
    from healthcare_mlops.monitoring.alerts import list_alerts as read_alerts

    frame = read_alerts(state(ctx).settings(), include_acknowledged=all_alerts, limit=limit)
    if fmt == Format.table and not frame.empty:
        frame = frame.drop(columns=["threshold"]).copy()
        frame["value"] = frame["value"].map(lambda v: "" if v is None or v != v else f"{v:.4g}")
        frame["message"] = frame["message"].map(lambda m: m if len(str(m)) <= 90 else str(m)[:87] + "...")
        for column in ("column_name", "acknowledged_by", "acknowledged_at", "retrain_run_id"):
            frame[column] = frame[column].map(lambda v: "" if v is None or v != v else v)
    if fmt == Format.table and frame.empty:
        typer.echo("no alerts" if all_alerts else "no unacknowledged alerts")
        return
    print_frame(frame, fmt)


@app.command("ack")
def ack(ctx: typer.Context,
        alert_id: str = typer.Argument(..., help="The alert's id (see `alerts list`)."),
        comment: str = typer.Option(None, "--comment", help="Why, or what was done (stored with the alert)."),
        fmt: Format = typer.Option(Format.table, "--format", help="table or json.")) -> None:
    """Acknowledge an alert (operator role); records who and when."""
    import pandas as pd

    from healthcare_mlops.composition import cli_identity
    from healthcare_mlops.monitoring.alerts import acknowledge

    settings = state(ctx).settings()
    alert = acknowledge(settings, alert_id, cli_identity(settings), comment)
    if fmt == Format.json:
        print_json(records(pd.DataFrame([alert]))[0])
        return
    typer.echo(f"acknowledged {alert['type']} alert {alert['alert_id']} as {alert['acknowledged_by']} "
               f"at {alert['acknowledged_at']}")
