"""Size limits of the product's code (issue 25): short functions with one job each, files a reader can hold.

A function's length runs from its ``def`` line to its last line (decorators not counted, its
docstring and comments counted), for every function and method, nested ones included. At
most ``ALLOWED_LONG_FUNCTIONS`` functions may be longer than ``MAX_FUNCTION_LINES``, and no
file may be longer than ``MAX_FILE_LINES``. Pure AST: no import of the code measured.
Function complexity and statement count are ruff's (pyproject.toml ``[tool.ruff]``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ("src", "app", "pages", "jobs")
MAX_FUNCTION_LINES = 60
ALLOWED_LONG_FUNCTIONS = 3
MAX_FILE_LINES = 500


def function_lengths(source: str, name: str = "<source>") -> list[tuple[str, int, int]]:
    """``(qualified name, def line, lines)`` of every function and method in ``source``."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qualified = f"{prefix}{child.name}"
                found.append((qualified, child.lineno, child.end_lineno - child.lineno + 1))
                visit(child, f"{qualified}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source, filename=name), "")
    return found


def product_files() -> list[Path]:
    files = sorted(p for root in MEASURED for p in (ROOT / root).rglob("*.py"))
    assert files, f"no Python files under {', '.join(MEASURED)} of {ROOT}"
    return files


def long_functions(files: list[Path]) -> list[str]:
    """``path:line name (n lines)`` of every function longer than the limit, longest first."""
    rows = []
    for path in files:
        for name, line, length in function_lengths(path.read_text(encoding="utf-8"), str(path)):
            if length > MAX_FUNCTION_LINES:
                rows.append((length, f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"))
    return [text for _, text in sorted(rows, reverse=True)]


def test_at_most_three_functions_are_longer_than_60_lines():
    found = long_functions(product_files())
    assert len(found) <= ALLOWED_LONG_FUNCTIONS, (
        f"{len(found)} functions are longer than {MAX_FUNCTION_LINES} lines (at most {ALLOWED_LONG_FUNCTIONS}); "
        "split one into functions with one job each:\n  " + "\n  ".join(found))


def long_files(files: list[Path]) -> list[str]:
    """``path (n lines)`` of every file longer than the limit."""
    return [f"{path.relative_to(ROOT)} ({n} lines)" for path in files
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES]


def test_no_file_is_longer_than_500_lines():
    found = long_files(product_files())
    assert not found, f"files longer than {MAX_FILE_LINES} lines:\n  " + "\n  ".join(found)


def _function(name: str, body_lines: int, indent: str = "") -> str:
    return f"{indent}def {name}():\n" + "".join(f"{indent}    x = {i}\n" for i in range(body_lines - 1))


@pytest.mark.parametrize("lines", [2, 60, 61, 200])
def test_a_function_is_measured_from_its_def_to_its_last_line(lines):
    assert function_lengths(_function("f", lines)) == [("f", 1, lines)]


def test_methods_and_nested_functions_are_measured_with_a_decorator_not_counted():
    source = ("class Job:\n    @property\n" + _function("run", 62, "    ")
              + "    def short(self):\n        def inner():\n            return 1\n        return inner()\n")
    assert function_lengths(source) == [("Job.run", 3, 62), ("Job.short", 65, 4), ("Job.short.inner", 66, 2)]


def test_a_fourth_long_function_fails_and_is_named(tmp_path, monkeypatch):
    this = sys.modules[__name__]
    (tmp_path / "src").mkdir()
    for i in range(ALLOWED_LONG_FUNCTIONS + 1):
        (tmp_path / "src" / f"m{i}.py").write_text(_function(f"long_{i}", 61 + i) + _function("fine", 60))
    monkeypatch.setattr(this, "ROOT", tmp_path)
    monkeypatch.setattr(this, "product_files", lambda: sorted((tmp_path / "src").glob("*.py")))
    assert long_functions(this.product_files()) == [f"src/m{i}.py:1 long_{i} ({61 + i} lines)"
                                                    for i in reversed(range(ALLOWED_LONG_FUNCTIONS + 1))]
    with pytest.raises(AssertionError, match=r"4 functions are longer than 60 lines(.|\n)*long_0 \(61 lines\)"):
        test_at_most_three_functions_are_longer_than_60_lines()


def test_a_file_over_500_lines_fails_and_is_named(tmp_path, monkeypatch):
    this = sys.modules[__name__]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "full.py").write_text("x = 1\n" * MAX_FILE_LINES)
    (tmp_path / "src" / "over.py").write_text("x = 1\n" * (MAX_FILE_LINES + 1))
    monkeypatch.setattr(this, "ROOT", tmp_path)
    monkeypatch.setattr(this, "product_files", lambda: sorted((tmp_path / "src").glob("*.py")))
    with pytest.raises(AssertionError, match=r"src/over\.py \(501 lines\)"):
        test_no_file_is_longer_than_500_lines()
    assert long_files(this.product_files()) == ["src/over.py (501 lines)"]
