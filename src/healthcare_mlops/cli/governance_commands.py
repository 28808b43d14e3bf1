"""``healthcare-mlops governance``: the model owner's checklist and decisions, without the console."""

from __future__ import annotations

import typer

from healthcare_mlops.cli.context import state
from healthcare_mlops.cli.output import Format, ReportFormat, format_option, print_json

app = typer.Typer(help="Champion/challenger governance: checks, approvals, promotion, rollback.",
                  no_args_is_help=True)

FORMAT = format_option(ReportFormat)


def _governance(ctx: typer.Context, repair: bool = True):
    """The target's governance as the CLI's user. ``repair``: a command that changes the registry
    first finishes or undoes a move a killed process left half-done (as ``governance repair``)."""
    from healthcare_mlops.composition import cli_runtime

    governance = cli_runtime(state(ctx).settings()).governance()
    if repair and governance.identity.may("repair"):      # a viewer's command goes on and is refused on its own
        governance.recover()
    return governance


def _print_checks(checks: list[dict]) -> None:
    from healthcare_mlops.governance.checks import Check
    from healthcare_mlops.tasks.model_governance import format_checks

    typer.echo(format_checks([Check(**c) for c in checks]) if checks else "  (not validated yet)")


@app.command()
def status(ctx: typer.Context, fmt: ReportFormat = FORMAT) -> None:
    """Champion, challenger, pending approvals and the challenger's checks next to the champion's.

    Only reads: an interrupted promotion or rollback is reported, not repaired."""
    governance = _governance(ctx, repair=False)
    result = _without_rejected_challenger(governance, governance.status())
    if fmt == Format.json:
        print_json(result)
        return
    typer.echo(f"model {result['model_name']} (approval mode {result['approval_mode']})")
    if result["interrupted"] is not None:
        typer.echo(f"an interrupted promotion of version {result['interrupted']}: "
                   "run `healthcare-mlops governance repair`")
    rejected = f" (version {result['rejected']} was rejected)" if result["rejected"] else ""
    typer.echo(f"champion: {result['champion'] or 'none'}   challenger: {result['challenger'] or 'none'}{rejected}   "
               f"pending approval: {', '.join(map(str, result['pending'])) or 'none'}")
    if result["challenger"] is not None and result["challenger"] == result["champion"]:
        typer.echo(f"\nthe challenger is the champion (version {result['champion']}); its checks:")
        _print_checks(result["champion_checks"])
        return
    if result["challenger"] is not None:
        typer.echo("\nchallenger checks:")
        _print_checks(result["checks"])
    typer.echo("\nchampion checks:")
    _print_checks(result["champion_checks"])


def _without_rejected_challenger(governance, result: dict) -> dict:
    """A version whose latest decision is a rejection is no challenger: nothing waits for a decision on
    it, and it is never promoted. Reported as ``rejected`` instead (the alias stays until training
    registers the next challenger)."""
    from healthcare_mlops.governance.audit import REJECTED

    challenger = result["challenger"]
    decision = governance.latest_decision(str(challenger)) if challenger is not None else None
    if decision is None or decision["action"] != REJECTED or challenger == result["champion"]:
        return {**result, "rejected": None}
    return {**result, "challenger": None, "checks": [], "referred": [], "rejected": challenger}


@app.command()
def repair(ctx: typer.Context, fmt: ReportFormat = FORMAT) -> None:
    """Finish or undo a promotion or rollback that a killed process left half-done (repair right).

    The audit log names who repaired it; nothing to do when no move was interrupted."""
    outcome = _governance(ctx, repair=False).recover()
    _done(fmt, {"action": "repaired" if outcome else "none", "outcome": outcome},
          "nothing to repair" if outcome is None else f"repair: {outcome}")


@app.command()
def validate(ctx: typer.Context, version: int = typer.Option(None, "--version", help="Default: the challenger."),
             fmt: ReportFormat = FORMAT) -> None:
    """Run every governance check on a version (operator role) and record the result in the audit log."""
    result = _governance(ctx).validate(version)
    if fmt == Format.json:
        print_json({"version": int(result.version), "passed": result.passed,
                    "checks": [c.as_dict() for c in result.checks]})
        return
    _print_checks([c.as_dict() for c in result.checks])
    typer.echo(f"version {result.version}: " + ("all hard checks pass" if result.passed else
               "; ".join(part for part in (
                   "fails " + ", ".join(c.name for c in result.failures) if result.failures else "",
                   "referred to an approver: " + ", ".join(c.name for c in result.referrals)
                   if result.referrals else "") if part)))


@app.command()
def approve(ctx: typer.Context, version: int = typer.Option(..., "--version"),
            comment: str = typer.Option(..., "--comment", help="Why you approve."),
            override_reason: str = typer.Option(None, "--override-reason",
                                                help="Required to approve a version that fails hard checks."),
            fmt: ReportFormat = FORMAT) -> None:
    """Approve a version (needs the approver role) and promote it to champion."""
    champion = _governance(ctx).approve(version, comment, override_reason)
    _done(fmt, {"action": "approved", "version": version, "champion": int(champion)},
          f"approved version {version}; champion is now version {champion}")


@app.command()
def reject(ctx: typer.Context, version: int = typer.Option(..., "--version"),
           comment: str = typer.Option(..., "--comment", help="Why you reject."), fmt: ReportFormat = FORMAT) -> None:
    """Reject a version (needs the approver role); the champion stays."""
    _governance(ctx).reject(version, comment)
    _done(fmt, {"action": "rejected", "version": version}, f"rejected version {version}")


@app.command()
def promote(ctx: typer.Context, version: int = typer.Option(None, "--version", help="Default: the challenger."),
            fmt: ReportFormat = FORMAT) -> None:
    """Promote a version whose hard checks pass and that is approved (or auto mode)."""
    champion = _governance(ctx).promote(version)
    _done(fmt, {"action": "promoted", "champion": int(champion)}, f"champion is version {champion}")


@app.command()
def rollback(ctx: typer.Context, to_version: int = typer.Option(..., "--to-version"),
             override_reason: str = typer.Option(None, "--override-reason",
                                                 help="Required for a version that was rejected or fails hard "
                                                      "checks; recorded."),
             fmt: ReportFormat = FORMAT) -> None:
    """Move the champion back to an earlier version that passed its checks (approver role)."""
    champion = _governance(ctx).rollback(to_version, override_reason=override_reason)
    _done(fmt, {"action": "rolled back", "champion": int(champion)}, f"champion is version {champion}")


@app.command()
def reproduce(ctx: typer.Context, version: int = typer.Option(..., "--version"), fmt: ReportFormat = FORMAT) -> None:
    """Rebuild a version from its lineage and compare it with the registered one (operator role).

    Reads the recorded table versions by time travel, checks the training frame's hash,
    retrains with the recorded parameters and compares predictions, metrics and every
    governance verdict, and the installed package versions. Exits 1 naming any difference;
    the outcome is tagged on the version and written to the audit log."""
    from healthcare_mlops.composition import cli_runtime
    from healthcare_mlops.errors import UserError
    from healthcare_mlops.governance.reproduce import reproduce_version
    from healthcare_mlops.governance.reproduction_report import format_report

    runtime = cli_runtime(state(ctx).settings())
    report = reproduce_version(runtime.reproduction_sources(), runtime.identity, version)
    if fmt == Format.json:
        print_json(report.as_dict())
    else:
        typer.echo(format_report(report))
    if not report.passed:
        raise UserError(f"version {version} is not reproduced: {report.result}")


def _done(fmt: Format, payload: dict, message: str) -> None:
    if fmt == Format.json:
        print_json(payload)
    else:
        typer.echo(message)
