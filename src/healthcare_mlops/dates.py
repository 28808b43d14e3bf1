"""Dates as people and the bundle pass them: ``YYYY-MM-DD`` text, a date, or nothing."""

from __future__ import annotations

import datetime as dt

from healthcare_mlops.errors import UserError


def parse_optional_date(value, what: str = "date") -> dt.date | None:
    """A date from a date, a datetime or ``YYYY-MM-DD`` text; None when ``value`` is None or blank.

    Blank means "the caller's default" (the latest load, today...): job parameters arrive as
    ``""`` when a bundle parameter is left empty. ``what`` names the value in the error.
    """
    if value is None or str(value).strip() == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise UserError(f"{what} must be YYYY-MM-DD, not '{value}'") from None


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()
