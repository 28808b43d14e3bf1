"""Small helpers every page uses: the identity of the session, empty states, errors, formatting."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

import pandas as pd
import streamlit as st

from app import auth, data
from healthcare_mlops.errors import UserError
from healthcare_mlops.identity import Identity



def identity() -> Identity:
    """The session's user and role, resolved on every run (the headers are the session's)."""
    return auth.current_identity()


def empty_state(what: str, job_key: str, params: dict | None = None, extra: str = "") -> None:
    """A page without data: say what is missing and what to run to produce it."""
    hint = data.run_hint(job_key, params)
    text = f"**No {what} yet.** Run {hint} to produce it."
    demo = data.facts().demo_command
    if demo:
        text += f" Or {demo} builds the whole local loop (data, pipeline, scoring, monitoring)."
    if extra:
        text += f" {extra}"
    st.info(text)


@contextmanager
def guard():
    """Show a problem the user can act on as a message, not a traceback."""
    try:
        yield
    except UserError as exc:
        st.error(str(exc))


def count(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{int(value):,}"


def usd(value) -> str:
    return "—" if value is None or pd.isna(value) else f"${float(value):,.0f}"


def number(value, digits: int = 3) -> str:
    return "—" if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


def ago(moment) -> str:
    """'3 days ago' for a timestamp (naive means UTC)."""
    if moment is None or pd.isna(moment):
        return "never"
    moment = pd.Timestamp(moment)
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    seconds = (pd.Timestamp(dt.datetime.now(dt.timezone.utc)) - moment).total_seconds()
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def reasons(text) -> str:
    """Review reason codes as a person reads them."""
    from healthcare_mlops.scoring.contract import REASON_SEPARATOR

    if not isinstance(text, str) or not text:
        return ""
    return ", ".join(part.strip().replace("_", " ") for part in text.split(REASON_SEPARATOR) if part.strip())
