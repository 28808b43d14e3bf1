#!/usr/bin/env python3
"""Validate the bundle against the Databricks CLI's bundle JSON schema (an extra CI gate).

    python ci/validate_bundle_schema.py SCHEMA.json [--root BUNDLE_ROOT]

SCHEMA.json is what ``databricks bundle schema`` prints (``.ci/run`` passes
``../shared/bundle-schema/jsonschema.json``; GitHub Actions generates it with the CLI).
Validated: the whole bundle as written (``databricks.yml`` with every included file and
the ``targets`` section), then, for each target, the bundle with that target's overrides
merged in as the CLI merges them. Every error names the file it comes from and the key
path; the exit code is 1 when there is any.

Python's ``jsonschema`` cannot compile ``\\p{L}`` and ``\\p{N}``: they are rewritten to
``[^\\W\\d_]`` (a letter) and ``\\d`` first (inside a character class, to an alternation).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from jsonschema import Draft202012Validator  # noqa: E402

from healthcare_mlops.bundle.definition import load_bundle  # noqa: E402
from healthcare_mlops.errors import UserError  # noqa: E402

LETTER = r"[^\W\d_]"
CLASS_WITH_PROPERTY = re.compile(r"\[(?!\^)((?:\\.|[^\]\\])*?\\p\{[LN]\}(?:\\.|[^\]\\])*)\]")


def rewrite_pattern(pattern: str) -> str:
    """A pattern with ``\\p{L}`` / ``\\p{N}`` expressed in Python's ``re`` syntax."""
    def rewrite_class(match: re.Match) -> str:
        body = match.group(1)
        letters, digits = r"\p{L}" in body, r"\p{N}" in body
        others = body.replace(r"\p{L}", "").replace(r"\p{N}", "")
        if letters and digits and not others:
            return r"[^\W_]"
        alternatives = [LETTER] if letters else []
        rest = (r"\d" if digits else "") + others
        if rest:
            alternatives.append(f"[{rest}]")
        return "(?:" + "|".join(alternatives) + ")"

    pattern = CLASS_WITH_PROPERTY.sub(rewrite_class, pattern)
    return pattern.replace(r"\p{L}", LETTER).replace(r"\p{N}", r"\d")


def rewrite_schema(node):
    """The schema with every ``pattern`` and ``patternProperties`` key rewritten."""
    if isinstance(node, dict):
        rewritten = {}
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                rewritten[key] = rewrite_pattern(value)
            elif key == "patternProperties" and isinstance(value, dict):
                rewritten[key] = {rewrite_pattern(k): rewrite_schema(v) for k, v in value.items()}
            else:
                rewritten[key] = rewrite_schema(value)
        return rewritten
    if isinstance(node, list):
        return [rewrite_schema(item) for item in node]
    return node


def as_json(value):
    """YAML values as JSON would hold them (dates become ISO strings, keys strings)."""
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def dotted(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def leaf_errors(error) -> list:
    """The errors that explain ``error``; inside a oneOf/anyOf, the leaves of the branch meant.

    The branch meant is the one whose type matched (an object for a mapping, not the
    ``${var...}`` string alternative every field has), then the one that got deepest.
    """
    if not error.context:
        return [error]
    branches: dict = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0] if sub.relative_schema_path else 0, []).append(sub)

    def score(errors: list) -> tuple:
        type_mismatch = any(e.validator == "type" and not e.relative_path for e in errors)
        reference_only = all(e.validator == "pattern" and not e.relative_path for e in errors)
        return (not type_mismatch, not reference_only, max(len(e.absolute_path) for e in errors))

    leaves: list = []
    for sub in max(branches.values(), key=score):
        leaves.extend(leaf_errors(sub))
    return leaves


def describe(error) -> str:
    message = error.message
    if len(message) > 300:
        message = message[:300] + " ..."
    return message


def validate(schema_path: Path, root: Path) -> list[str]:
    with open(schema_path, encoding="utf-8") as handle:
        schema = rewrite_schema(json.load(handle))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    bundle = load_bundle(root)
    documents = [("bundle as written", bundle.document)]
    documents += [(f"target {name}", bundle.target_document(name)) for name in bundle.target_names()]
    found: dict = {}
    for label, document in documents:
        for error in validator.iter_errors(as_json(document)):
            for leaf in leaf_errors(error):
                path = list(leaf.absolute_path)
                text = f"{bundle.source_of(dotted(path))}: {dotted(path)}: {describe(leaf)}"
                found.setdefault(text, []).append(label)
    return [f"{text} [{', '.join(labels)}]" for text, labels in found.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("schema", type=Path, help="the bundle JSON schema (databricks bundle schema)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the bundle root (default: this checkout)")
    args = parser.parse_args(argv)
    if not args.schema.is_file():
        print(f"error: {args.schema}: schema file not found", file=sys.stderr)
        return 2
    try:
        errors = validate(args.schema, args.root)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if errors:
        print(f"bundle schema validation failed ({len(errors)} error{'s' if len(errors) != 1 else ''}):",
              file=sys.stderr)
        for line in errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"bundle matches {args.schema.name} (the bundle as written and every target merged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
