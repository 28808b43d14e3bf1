"""A validator for Quartz cron expressions, the schedule syntax of Databricks Jobs.

``seconds minutes hours day-of-month month day-of-week [year]``, each field a ``*``, a
value, a range ``a-b``, a step ``a/n``, ``*/n`` or ``a-b/n``, or a comma list of those;
month and day-of-week also take names (``JAN``, ``MON``); ``?`` means "no specific value"
in day-of-month or day-of-week, and exactly one of the two must be ``?``; day-of-month
takes ``L``, ``L-n``, ``LW`` and ``nW``; day-of-week takes ``L``, ``nL`` and ``n#k``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@dataclass(frozen=True)
class CronField:
    name: str
    low: int
    high: int
    names: tuple = ()
    name_base: int = 0


FIELDS = (
    CronField("seconds", 0, 59),
    CronField("minutes", 0, 59),
    CronField("hours", 0, 23),
    CronField("day-of-month", 1, 31),
    CronField("month", 1, 12, tuple(MONTHS), 1),
    CronField("day-of-week", 1, 7, tuple(DAYS), 1),
    CronField("year", 1970, 2099),
)


def _value(token: str, spec: CronField) -> int:
    upper = token.upper()
    if spec.names and upper in spec.names:
        return spec.names.index(upper) + spec.name_base
    if not token.isdigit():
        expected = f"a number {spec.low}-{spec.high}"
        if spec.names:
            expected += f" or a name ({spec.names[0]}-{spec.names[-1]})"
        raise ValueError(f"'{token}' is not {expected}")
    number = int(token)
    if not spec.low <= number <= spec.high:
        raise ValueError(f"'{token}' is out of range {spec.low}-{spec.high}")
    return number


def _is_day_special(item: str, spec: CronField) -> bool:
    """Whether ``item`` is one of the day fields' special forms (``L``, ``L-3``, ``15W``, ``5L``, ``6#2``), checked.

    Anything else is a plain value, range or step, which ``_check_item`` checks.
    """
    if spec.name == "day-of-month":
        if item in ("L", "LW") or re.fullmatch(r"L-\d{1,2}", item):
            if item.startswith("L-") and not 0 <= int(item[2:]) <= 30:
                raise ValueError(f"'{item}': the offset from the last day must be 0-30")
            return True
        if re.fullmatch(r"\d{1,2}W", item):
            _value(item[:-1], spec)
            return True
    if spec.name == "day-of-week":
        if item == "L":
            return True
        if re.fullmatch(r"\w+L", item) and item.upper() not in spec.names:
            _value(item[:-1], spec)
            return True
        if "#" in item:
            day, _, nth = item.partition("#")
            _value(day, spec)
            if not nth.isdigit() or not 1 <= int(nth) <= 5:
                raise ValueError(f"'{item}': the week after '#' must be 1-5")
            return True
    return False


def _check_item(item: str, spec: CronField) -> None:
    """Raise ``ValueError`` saying what is wrong with one list element of a field."""
    if item == "":
        raise ValueError("empty list element")
    if _is_day_special(item, spec):
        return
    base, slash, step = item.partition("/")
    if slash:
        if not step.isdigit() or int(step) < 1:
            raise ValueError(f"'{item}': the step after '/' must be a positive number")
        if int(step) > spec.high - spec.low + 1 and spec.name != "year":
            raise ValueError(f"'{item}': step {step} is larger than the field's range "
                             f"{spec.low}-{spec.high}")
    if base == "*":
        return
    first, dash, last = base.partition("-")
    start = _value(first, spec)
    if dash:
        end = _value(last, spec)
        if spec.name in ("seconds", "minutes", "hours", "day-of-month", "year") and end < start:
            raise ValueError(f"'{base}': the range's end is before its start")


def quartz_errors(expression) -> list[str]:
    """Everything wrong with a Quartz cron expression (empty when it is valid)."""
    if not isinstance(expression, str):
        return [f"the expression must be a string, not {type(expression).__name__}"]
    fields = expression.split()
    if len(fields) not in (6, 7):
        return [f"'{expression}' has {len(fields)} fields; a Quartz expression has 6 or 7: "
                "seconds minutes hours day-of-month month day-of-week [year]"]
    errors = []
    for position, (text, spec) in enumerate(zip(fields, FIELDS), start=1):
        if text == "?":
            if spec.name not in ("day-of-month", "day-of-week"):
                errors.append(f"field {position} ({spec.name}): '?' is only allowed in "
                              "day-of-month and day-of-week")
            continue
        for item in text.split(","):
            try:
                if item == "?":
                    raise ValueError("'?' cannot be part of a list")
                _check_item(item, spec)
            except ValueError as exc:
                errors.append(f"field {position} ({spec.name}): {exc}")
    day_of_month, day_of_week = fields[3], fields[5]
    if (day_of_month == "?") == (day_of_week == "?"):
        errors.append("exactly one of day-of-month (field 4) and day-of-week (field 6) must be '?' "
                      f"(got '{day_of_month}' and '{day_of_week}')")
    return errors


def is_valid_quartz(expression) -> bool:
    return not quartz_errors(expression)
