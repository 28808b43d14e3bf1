"""The global options every command shares, resolved once into ``Settings``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import typer

from healthcare_mlops.dates import parse_optional_date, today_utc
from healthcare_mlops.settings import Settings, resolve_settings


@dataclass
class CliState:
    target: str
    home: str | None

    def settings(self, overrides: dict | None = None, resolve_model_name: bool = True) -> Settings:
        return resolve_settings(self.target, self.home, overrides, resolve_model_name)


def state(ctx: typer.Context) -> CliState:
    return ctx.find_root().obj


def parse_date(value: str | None, option: str = "--as-of") -> dt.date:
    """An ISO date (YYYY-MM-DD); today (UTC) when omitted."""
    return parse_optional_date(value, option) or today_utc()
