"""Helpers of the bundle tests: edit a copy of a bundle, validate it, find the problem a rule reports."""

from __future__ import annotations

from pathlib import Path

from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.emulator.validation import validate_bundle


def replace_text(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace ``old`` (which must be there, ``count`` times at least) in the file."""
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def problems(root: Path) -> list[str]:
    """Every problem offline validation reports for the bundle at ``root``, as text."""
    return [str(problem) for problem in validate_bundle(load_bundle(root))]


def one_matching(messages: list[str], *fragments: str) -> str:
    """The first message holding every fragment (the test fails, listing all, when none does)."""
    matching = [m for m in messages if all(fragment in m for fragment in fragments)]
    assert matching, f"no problem contains {fragments}; problems: {messages}"
    return matching[0]
