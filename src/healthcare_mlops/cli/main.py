"""``healthcare-mlops``: one command tree for data, jobs, models and the console."""

from __future__ import annotations

import inspect
import os
import sys

import typer
from typer.core import TyperGroup

from healthcare_mlops.cli import (alerts_commands, app_commands, data_commands, governance_commands, jobs_commands,
                                  serve_commands)
from healthcare_mlops.cli.context import CliState, state
from healthcare_mlops.cli.output import Format, ReportFormat, format_option, print_frame, print_mapping
from healthcare_mlops.errors import UserError
from healthcare_mlops.identity import role_needed
from healthcare_mlops.runtime.read_only import READS
from healthcare_mlops.settings import DEFAULT_HOME, HOME_ENV, LOCAL_TARGET
from healthcare_mlops.tables import PERSONAL_TABLES

GLOBAL_OPTIONS = ("--home", "--target")


def global_options_first(args: list[str]) -> list[str]:
    """``args`` with every global option and its value moved in front of the command's name, in their
    order (so the last one given wins, as for any option), up to a ``--``; one without a value stays."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        if arg.split("=", 1)[0] in GLOBAL_OPTIONS and ("=" in arg or index + 1 < len(args)):
            width = 1 if "=" in arg else 2
            front += args[index:index + width]
            index += width
            continue
        rest.append(arg)
        index += 1
    return front + rest


def reflowed(text: str | None) -> str | None:
    """Help text with each paragraph's source line breaks joined, so the terminal wraps it (rich help
    keeps a docstring's later paragraphs' line breaks, which cut sentences); a paragraph starting
    with ``\\b`` keeps its lines, as in click."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)


def _reflow_help(command) -> None:
    command.help = reflowed(command.help)
    for sub in getattr(command, "commands", {}).values():
        _reflow_help(sub)


class GlobalOptionsGroup(TyperGroup):
    """The root group: its global options are accepted after the command's name too, so that
    ``jobs run x --home DIR`` means the same as ``--home DIR jobs run x``; every command's help
    is reflowed (``reflowed``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _reflow_help(self)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, global_options_first(args))


app = typer.Typer(cls=GlobalOptionsGroup, help="Healthcare-insurance risk MLOps on a laptop or Databricks.",
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)
app.add_typer(data_commands.app, name="data")
app.add_typer(jobs_commands.app, name="jobs")
app.add_typer(governance_commands.app, name="governance")
app.add_typer(alerts_commands.app, name="alerts")
app.command("app")(app_commands.console)
app.command("serve")(serve_commands.serve)


@app.callback()
def main(
    ctx: typer.Context,
    home: str = typer.Option(None, "--home", envvar=HOME_ENV, show_envvar=True, show_default=f"./{DEFAULT_HOME}",
                             help="Local runtime root: tables, MLflow, console files. Before or after the "
                                  "command's name."),
    target: str = typer.Option(LOCAL_TARGET, "--target", help="local, or a bundle target (dev, staging, prod). "
                                                              "Before or after the command's name."),
) -> None:
    """Healthcare-insurance risk MLOps on a laptop or Databricks."""
    ctx.obj = CliState(target=target, home=home)


@app.command()
def info(ctx: typer.Context,
         fmt: ReportFormat = format_option(ReportFormat)) -> None:
    """Show the resolved settings: target, catalog, schema, MLflow URIs, table locations."""
    print_mapping(state(ctx).settings().as_dict(), fmt)


@app.command()
def sql(ctx: typer.Context,
        query: str = typer.Argument(..., help=f"One read statement ({READS}); unqualified tables resolve in "
                                              "the target's schema."),
        fmt: Format = format_option(),
        identifiers: bool = typer.Option(False, "--identifiers",
                                         help=f"Also expose the tables with direct identifiers "
                                              f"({', '.join(PERSONAL_TABLES)}); needs a role allowed "
                                              f"read_identifiers ({role_needed('read_identifiers')} or higher).")
        ) -> None:
    """Run one read statement through the read-only path (a locked DuckDB session over the local
    tables, or the SQL warehouse); anything else is refused with `error: read-only: ...`."""
    from healthcare_mlops.composition import cli_identity, sql

    settings = state(ctx).settings()
    if identifiers:
        cli_identity(settings).require("read_identifiers")
    print_frame(sql(settings, identifiers).query(query), fmt)


@app.command()
def demo(ctx: typer.Context,
         no_app: bool = typer.Option(False, "--no-app", help="Do not start the console at the end."),
         patients: int = typer.Option(20000, "--patients", min=100,
                                      help="Members on the first day. Fewer widen the per-group checks' "
                                           "intervals (more warnings, which never block); a champion was "
                                           "reached from 1,338 (README, Model quality)."),
         scenario: str = typer.Option("smoker_surge", "--scenario",
                                      help="The second day's population shift (see `data scenarios`)."),
         seed: int = typer.Option(42, "--seed", help="Random seed of the generated members.")) -> None:
    """The whole local loop through the local runner: data, the pipeline's jobs, then the console."""
    from healthcare_mlops.cli.demo import demo_context, run_demo
    from healthcare_mlops.composition import require_this_machine

    cli_state = state(ctx)
    require_this_machine(cli_state.settings(resolve_model_name=False), "the demo",
                         "deploy the bundle and run ml_training_pipeline")
    run_demo(demo_context(cli_state.home, patients, seed=seed, no_app=no_app, scenario=scenario))


def run() -> None:
    """Entry point: a user error or failure exits non-zero with a one-line cause."""
    try:
        app()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # an unexpected failure still gets a one-line cause
        if os.environ.get("HEALTHCARE_MLOPS_DEBUG"):
            raise
        first_line = (str(exc).strip().splitlines() or [""])[0]
        typer.echo(f"error: {type(exc).__name__}: {first_line} "
                   f"(set HEALTHCARE_MLOPS_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
