"""A verdict's words come from the same fields as its numbers (issue 29 item 1).

Every combination of where the interval lies (inside, reaching inside, wholly beyond), on which
side of the limit, and hard or soft: the words say "a real difference" exactly when the whole
interval is beyond the limit, "may be chance" exactly when it reaches back inside, and "blocks
promotion" exactly for a hard fail.
"""

import itertools

import pytest

from healthcare_mlops.governance.checks import FAIL, PASS, REFER, WARN, in_words, verdict_words

# (threshold, estimate, interval, expected position): position is where the interval lies
CASES = [
    ("<= 1.25", 1.1, [1.0, 1.2], "inside"),
    ("<= 1.25", 1.1, [1.0, 1.4], "estimate inside, interval reaches beyond"),
    ("<= 1.25", 1.4, [1.1, 1.6], "reaches inside"),
    ("<= 1.25", 2.68, [1.95, 4.52], "beyond"),
    (">= 0.8", 0.9, [0.85, 0.95], "inside"),
    (">= 0.8", 0.7, [0.6, 0.85], "reaches inside"),
    (">= 0.8", 0.5, [0.4, 0.6], "beyond"),
    ("0.9-1.1", 1.0, [0.993, 1.005], "inside"),
    ("0.9-1.1", 1.15, [1.05, 1.2], "reaches inside"),
    ("0.9-1.1", 0.73, [0.7, 0.76], "beyond"),
    ("0.9-1.1", 1.3, [1.2, 1.4], "beyond"),
]


def _verdict(position: str, hard: bool) -> str:
    """The verdict checks.py gives: a hard check fails when the whole interval is beyond; a soft one warns."""
    if position.startswith(("inside", "estimate inside")):
        return PASS
    if position == "beyond" and hard:
        return FAIL
    return WARN


@pytest.mark.parametrize("case,hard", list(itertools.product(CASES, (True, False))))
def test_words_follow_the_interval_and_the_consequence_follows_the_verdict(case, hard):
    threshold, estimate, interval, position = case
    verdict = _verdict(position, hard)
    words = verdict_words(verdict, hard, estimate, interval, threshold)
    assert ("real difference" in words) == (position == "beyond"), words
    assert ("may be chance" in words) == (position == "reaches inside"), words
    assert ("Within" in words) == position.startswith(("inside", "estimate inside")), words
    assert ("blocks promotion" in words) == (verdict == FAIL and hard), words
    if verdict != PASS:
        assert ("never blocks" in words) == (not hard), words
        assert threshold in words


def test_a_soft_check_wholly_beyond_its_limit_is_not_called_chance():
    """The reported case: age band 18-29 vs 60+, 2.68 x (1.95-4.52) against <= 1.25, soft."""
    check = {"name": "fairness_mae_ratio_age_band", "value": 2.68, "interval": [1.95, 4.52], "threshold": "<= 1.25",
             "verdict": WARN, "hard": False, "detail": "error relative to mean charges, 18-29 vs 60+: 2.68 x"}
    words = in_words(check)
    assert "may be chance" not in words
    assert "real difference" in words and "never blocks" in words


@pytest.mark.parametrize("verdict,hard,value", [(PASS, True, 0.9), (FAIL, True, 0.5), (WARN, False, 0.5),
                                                (FAIL, True, None), (REFER, True, 0.5)])
def test_checks_without_an_interval(verdict, hard, value):
    words = verdict_words(verdict, hard, value, None, ">= 0.8")
    if verdict == PASS:
        assert words == "Meets >= 0.8."
    elif verdict == REFER:
        assert "approver decides" in words
    elif value is None:
        assert words.startswith("No value to judge")
    else:
        assert "Outside >= 0.8" in words and ("blocks promotion" in words) == hard


@pytest.mark.parametrize("threshold", ["", None, "loads from the registry", "<= abc", "1-2-3"])
def test_a_threshold_that_is_not_a_number_falls_back_to_the_verdict(threshold):
    assert verdict_words(PASS, True, 1.0, [0.9, 1.1], threshold).startswith("Meets")
    assert "blocks promotion" in verdict_words(FAIL, True, 1.0, [0.9, 1.1], threshold)


def test_a_usd_threshold_with_words_after_the_number():
    words = verdict_words(FAIL, True, 6000.0, None, "<= 5,500 USD (champion MAE x 1.1)")
    assert "Outside" in words and "blocks promotion" in words
