"""The Quartz cron validator used for the jobs' schedules."""

from __future__ import annotations

import pytest

from healthcare_mlops.emulator.quartz import is_valid_quartz, quartz_errors


@pytest.mark.parametrize("expression", [
    "0 0 2 * * ?",
    "0 0 6 * * ?",
    "0 0/15 * * * ?",
    "0 */5 9-17 ? * MON-FRI",
    "0 30 10 ? * 2,4,6",
    "0 0 12 L * ?",
    "0 0 12 L-3 * ?",
    "0 0 12 LW * ?",
    "0 0 12 15W * ?",
    "0 0 12 ? * 6L",
    "0 0 12 ? * FRI#3",
    "0 0 12 1 JAN,JUL ?",
    "0 0 12 1 jan-jun ?",
    "15,45 0 0 1 1 ? 2030",
    "0 0 0 1 1 ? 2030-2035/2",
    "0 0 0 ? * SUN *",
])
def test_valid_expressions(expression):
    assert quartz_errors(expression) == []
    assert is_valid_quartz(expression)


@pytest.mark.parametrize("expression, fragment", [
    ("0 2 * * *", "has 5 fields"),
    ("0 0 2 * * ? 2030 x", "has 8 fields"),
    ("0 0 25 * * ?", "field 3 (hours): '25' is out of range 0-23"),
    ("60 0 2 * * ?", "field 1 (seconds): '60' is out of range 0-59"),
    ("0 0 2 * * *", "exactly one of day-of-month (field 4) and day-of-week (field 6) must be '?'"),
    ("0 0 2 ? * ?", "exactly one of day-of-month"),
    ("0 0 ? * * ?", "field 3 (hours): '?' is only allowed in day-of-month and day-of-week"),
    ("0 0 2 32 * ?", "field 4 (day-of-month): '32' is out of range 1-31"),
    ("0 0 2 * 13 ?", "field 5 (month): '13' is out of range 1-12"),
    ("0 0 2 * FOO ?", "field 5 (month): 'FOO' is not a number 1-12 or a name (JAN-DEC)"),
    ("0 0 2 ? * 8", "field 6 (day-of-week): '8' is out of range 1-7"),
    ("0 0 2 ? * MON#6", "the week after '#' must be 1-5"),
    ("0 0/0 2 * * ?", "the step after '/' must be a positive number"),
    ("0 0/61 2 * * ?", "step 61 is larger than the field's range"),
    ("0 0 10-2 * * ?", "the range's end is before its start"),
    ("0 0 2,,3 * * ?", "empty list element"),
    ("0 0 2 * * ? 1969", "field 7 (year): '1969' is out of range 1970-2099"),
    ("0 0 2 L-31 * ?", "the offset from the last day must be 0-30"),
])
def test_invalid_expressions(expression, fragment):
    errors = quartz_errors(expression)
    assert errors, expression
    assert any(fragment in error for error in errors), errors


def test_not_a_string():
    assert quartz_errors(None) == ["the expression must be a string, not NoneType"]
