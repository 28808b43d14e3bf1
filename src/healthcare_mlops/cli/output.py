"""Printing results as a table, CSV or JSON, the same way for every command."""

from __future__ import annotations

import datetime as dt
import json
import math
from enum import Enum

import pandas as pd
import typer


class Format(str, Enum):
    """Rows: a table, CSV or JSON."""
    table = "table"
    csv = "csv"
    json = "json"


class ReportFormat(str, Enum):
    """A report or a mapping, not rows: no CSV."""
    table = "table"
    json = "json"


def format_option(kind: type[Enum] = Format):
    """``--format``: its help names exactly the choices ``kind`` accepts."""
    names = [member.value for member in kind]
    return typer.Option(kind("table"), "--format", help=f"{', '.join(names[:-1])} or {names[-1]}.")


def _json_default(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "item"):          # numpy scalars
        return value.item()
    return str(value)


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN and NaT become null)."""
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def print_json(payload) -> None:
    typer.echo(json.dumps(payload, indent=2, default=_json_default))


def print_frame(frame: pd.DataFrame, fmt: Format) -> None:
    if fmt == Format.json:
        print_json(records(frame))
    elif fmt == Format.csv:
        typer.echo(frame.to_csv(index=False), nl=False)
    elif frame.empty:
        typer.echo("(no rows)" if len(frame.columns) else "(no result)")
        if len(frame.columns):
            typer.echo(" | ".join(frame.columns))
    else:
        with pd.option_context("display.max_rows", 200, "display.max_columns", 50, "display.width", 200):
            typer.echo(frame.to_string(index=False))


def print_mapping(mapping: dict, fmt: Format) -> None:
    """A flat or nested mapping: JSON as is, otherwise one ``key: value`` line each."""
    if fmt == Format.json:
        print_json(mapping)
        return
    for key, value in mapping.items():
        if isinstance(value, dict):
            typer.echo(f"{key}:")
            for inner_key, inner_value in value.items():
                typer.echo(f"  {inner_key}: {inner_value}")
        else:
            typer.echo(f"{key}: {value}")
