"""``healthcare-mlops data``: generate synthetic member loads and ingest CSV files."""

from __future__ import annotations

from pathlib import Path

import typer

from healthcare_mlops.cli.context import parse_date, state
from healthcare_mlops.cli.output import Format, ReportFormat, format_option, print_json
from healthcare_mlops.data.scenarios import SCENARIOS

app = typer.Typer(help="Generate and ingest patient data into silver_patients and dim_patients.",
                  no_args_is_help=True)


def _report(report, fmt: Format) -> None:
    if fmt == Format.json:
        print_json(report.as_dict())
        return
    typer.echo(f"{report.source} as of {report.as_of_date}: rows in {report.rows_in} = "
               f"loaded {report.rows_loaded} + quarantined {report.rows_quarantined}")
    typer.echo(f"dim_patients: {report.current_members} current members, {report.dim_versions} versions")


@app.command()
def generate(
    ctx: typer.Context,
    patients: int = typer.Option(..., "--patients", min=1,
                                 help="Members who join with this load (the first load: the whole population)."),
    seed: int = typer.Option(42, "--seed", help="Random seed; the same seed and as-of date give the same load."),
    as_of: str = typer.Option(None, "--as-of", help="Load date YYYY-MM-DD (default: today, UTC)."),
    scenario: str = typer.Option("baseline", "--scenario",
                                 help="Population shift to apply: " + ", ".join(SCENARIOS) + "."),
    replace: bool = typer.Option(False, "--replace",
                                 help="Replace this date's generated load made with another seed, size or scenario."),
    fmt: ReportFormat = format_option(ReportFormat),
) -> None:
    """Generate synthetic members for one as-of date and load them (validated, SCD2)."""
    from healthcare_mlops.composition import cli_runtime
    from healthcare_mlops.tasks.load_members import generate_patients

    report = generate_patients(cli_runtime(state(ctx).settings()), patients, seed, parse_date(as_of), scenario,
                               replace)
    _report(report, fmt)


@app.command()
def ingest(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV with header age,sex,bmi,children,smoker,region,charges "
                                          "(any order) and optionally a member-id column."),
    as_of: str = typer.Option(None, "--as-of", help="Load date YYYY-MM-DD (default: today, UTC)."),
    replace: bool = typer.Option(False, "--replace",
                                 help="Replace this date's load of the same path made from other content."),
    member_id_column: str = typer.Option(None, "--member-id-column",
                                         help="Name of the member-id column (default: the bundle variable "
                                              "member_id_column, member_id)."),
    fmt: ReportFormat = format_option(ReportFormat),
) -> None:
    """Load a CSV in the public insurance-charges format; bad rows go to the quarantine.

    Needs the operator role. Members with an id keep one key across files; without ids a
    row's key comes from its values. Loading the same file again changes nothing; a changed
    file at the same path for the same date needs --replace."""
    from healthcare_mlops.composition import cli_runtime
    from healthcare_mlops.tasks.load_members import ingest_csv

    report = ingest_csv(cli_runtime(state(ctx).settings()), file, parse_date(as_of), replace,
                        id_column=member_id_column)
    _report(report, fmt)


@app.command()
def scenarios() -> None:
    """List the population-shift scenarios and their magnitudes."""
    for scenario in SCENARIOS.values():
        typer.echo(f"{scenario.name:15} {scenario.description}")
