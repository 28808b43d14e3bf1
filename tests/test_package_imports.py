"""The package is importable without Spark: only ``healthcare_mlops.spark`` imports pyspark.

The console and the CLI's light commands must start fast and must not need a JVM, so
nothing outside ``src/healthcare_mlops/spark/`` may import pyspark when it is imported.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import healthcare_mlops

PACKAGE_DIR = Path(healthcare_mlops.__file__).resolve().parent
SPARK_DIR = PACKAGE_DIR / "spark"

LIGHT_MODULES = (
    "healthcare_mlops",
    "healthcare_mlops.settings",
    "healthcare_mlops.tables",
    "healthcare_mlops.errors",
    "healthcare_mlops.features.definitions",
    "healthcare_mlops.data.contract",
    "healthcare_mlops.data.csv_source",
    "healthcare_mlops.data.scenarios",
    "healthcare_mlops.runtime.catalog",
    "healthcare_mlops.runtime.delta_catalog",
    "healthcare_mlops.runtime.sql_engine",
    "healthcare_mlops.cli.main",
)


def loaded_after_import(modules: tuple[str, ...]) -> list[str]:
    """Import ``modules`` in a fresh interpreter; return the pyspark modules it loaded."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'pyspark' or m.startswith('pyspark.'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_light_modules_do_not_load_pyspark():
    assert loaded_after_import(LIGHT_MODULES) == []


@pytest.mark.slow
def test_the_check_detects_pyspark():
    """The subprocess check above can fail: importing a Spark module is seen."""
    assert "pyspark" in loaded_after_import(("healthcare_mlops.spark.random_columns",))


def _module_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported.

    Function bodies run later, and ``if TYPE_CHECKING:`` blocks never run; everything
    else (module body, class bodies, try/if blocks at module level) runs on import.
    """
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imports_pyspark(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name == "pyspark" or alias.name.startswith("pyspark.") for alias in node.names)
    module = node.module or ""
    return node.level == 0 and (module == "pyspark" or module.startswith("pyspark."))


def pyspark_imports(source: str) -> list[int]:
    return [node.lineno for node in _module_level_imports(ast.parse(source)) if _imports_pyspark(node)]


def test_no_module_outside_spark_imports_pyspark_at_module_level():
    offenders = []
    modules = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(modules) > 10
    for path in modules:
        if SPARK_DIR in path.parents:
            continue
        for line in pyspark_imports(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line}")
    assert offenders == [], "pyspark imported at module level outside healthcare_mlops/spark: " + \
        ", ".join(offenders)


@pytest.mark.parametrize("source, expected", [
    ("import pyspark\n", [1]),
    ("from pyspark.sql import functions as F\n", [1]),
    ("import os, pyspark.sql\n", [1]),
    ("try:\n    import pyspark\nexcept ImportError:\n    pass\n", [2]),
    ("class A:\n    from pyspark.sql import DataFrame\n", [2]),
    ("def f():\n    from pyspark.sql import DataFrame\n", []),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pyspark.sql import DataFrame\n", []),
    ("from .pyspark import x\nimport pysparkling\n", []),
])
def test_the_scan_finds_module_level_imports(source, expected):
    assert pyspark_imports(source) == expected
