"""ci/validate_bundle_schema.py on a small schema written like the CLI's (no ../shared needed)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "bundles" / "runner"
REFERENCE = r"\$\{(var(\.\p{L}+([-_]*[\p{L}\p{N}]+)*(\[[0-9]+\])*)+)\}"


def _script():
    spec = importlib.util.spec_from_file_location("validate_bundle_schema", REPO / "ci" / "validate_bundle_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _or_reference(schema: dict) -> dict:
    """Every field also accepts a ${var...} string, as in the CLI's schema."""
    return {"oneOf": [schema, {"type": "string", "pattern": REFERENCE}]}


def _schema() -> dict:
    strings = {"type": "array", "items": {"type": "string"}}
    task = {"type": "object", "additionalProperties": False, "required": ["task_key"], "properties": {
        "task_key": {"type": "string"}, "run_if": {"type": "string", "enum": ["ALL_SUCCESS", "ALL_DONE"]},
        "environment_key": {"type": "string"}, "timeout_seconds": _or_reference({"type": "integer"}),
        "depends_on": {"type": "array", "items": {"type": "object", "properties": {"task_key": {"type": "string"}}}},
        "spark_python_task": {"type": "object", "additionalProperties": False,
                              "properties": {"python_file": {"type": "string"}, "parameters": strings}}}}
    job = {"type": "object", "additionalProperties": False, "properties": {
        "name": {"type": "string"}, "tasks": {"type": "array", "items": _or_reference(task)},
        "parameters": {"type": "array"}, "environments": {"type": "array"}}}
    jobs = {"type": "object", "additionalProperties": _or_reference(job)}
    resources = {"type": "object", "properties": {"jobs": jobs}}
    return {"type": "object", "additionalProperties": False, "properties": {
        "bundle": {"type": "object"}, "include": strings, "variables": {"type": "object"},
        "targets": {"type": "object"}, "resources": _or_reference(resources)}}


@pytest.fixture
def schema_file(tmp_path) -> Path:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(_schema()))
    return path


def test_rewritten_patterns_compile_and_match():
    script = _script()
    pattern = script.rewrite_pattern(REFERENCE)
    assert r"\p" not in pattern
    assert re.search(pattern, "${var.r2_min}") and re.search(pattern, "${var.items[0]}")
    assert not re.search(pattern, "${var._x}")
    assert script.rewrite_pattern(r"[\p{L}_-]+") == r"(?:[^\W\d_]|[_-])+"
    assert script.rewrite_pattern(r"\p{N}+") == r"\d+"


def test_fixture_bundle_matches(schema_file, capsys):
    assert _script().main([str(schema_file), "--root", str(FIXTURE)]) == 0
    assert "bundle matches schema.json" in capsys.readouterr().out


def test_errors_name_file_key_and_target(schema_file, tmp_path, capsys):
    root = tmp_path / "bundle"
    shutil.copytree(FIXTURE, root)
    jobs = root / "resources" / "jobs.yml"
    jobs.write_text(jobs.read_text().replace("          timeout_seconds: 1\n", "          timeout_secs: 1\n")
                    .replace("        - task_key: cleanup\n          run_if: ALL_DONE",
                             "        - task_key: cleanup\n          run_if: SOMETIMES"))
    assert _script().main([str(schema_file), "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "bundle schema validation failed (2 errors)" in err
    assert ("resources/jobs.yml: resources.jobs.slow.tasks[0]: Additional properties are not allowed "
            "('timeout_secs' was unexpected) [bundle as written, target dev]") in err
    assert "resources/jobs.yml: resources.jobs.failing.tasks[4].run_if: 'SOMETIMES' is not one of" in err


def test_missing_schema_file(tmp_path, capsys):
    assert _script().main([str(tmp_path / "nope.json")]) == 2
    assert "schema file not found" in capsys.readouterr().err
