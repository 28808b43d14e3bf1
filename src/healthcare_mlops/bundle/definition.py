"""Load ``databricks.yml`` and its included resource files into one bundle document.

The bundle is the single definition of every job. This module reads it the way the
Databricks CLI does for the fields the project uses: ``include`` globs, ``variables``
with defaults, and per-target variable overrides.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from healthcare_mlops.errors import UserError

BUNDLE_ROOT_ENV = "HEALTHCARE_MLOPS_BUNDLE_ROOT"
BUNDLE_FILE = "databricks.yml"


def default_bundle_root() -> Path:
    """The project checkout's root, or $HEALTHCARE_MLOPS_BUNDLE_ROOT when set."""
    if os.environ.get(BUNDLE_ROOT_ENV):
        return Path(os.environ[BUNDLE_ROOT_ENV])
    return Path(__file__).resolve().parents[3]


def _read_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise UserError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return document


def _merge(base: dict, extra: dict, path: str, sources: dict, source: str) -> None:
    """Deep-merge ``extra`` into ``base``; remember which file defined each resource."""
    for key, value in extra.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, where, sources, source)
        else:
            base[key] = value
            sources.setdefault(where, source)


@dataclass
class Bundle:
    """The merged bundle document and the file each top-level resource came from."""

    root: Path
    document: dict
    sources: dict

    def source_of(self, dotted_key: str) -> str:
        """The file that defines ``dotted_key`` (or its closest defined parent)."""
        parts = dotted_key.split(".")
        while parts:
            key = ".".join(parts)
            if key in self.sources:
                return self.sources[key]
            parts.pop()
        return BUNDLE_FILE

    def variable_defaults(self) -> dict:
        return {name: spec.get("default") for name, spec in
                (self.document.get("variables") or {}).items()}

    def target_names(self) -> list[str]:
        return list((self.document.get("targets") or {}).keys())

    def target_variables(self, target: str) -> dict:
        """Variable values for ``target``: defaults, then the target's ``variables`` block."""
        targets = self.document.get("targets") or {}
        if target not in targets:
            raise UserError(f"unknown bundle target '{target}' (known: {', '.join(targets)})")
        values = self.variable_defaults()
        values.update((targets[target] or {}).get("variables") or {})
        return values

    def jobs(self) -> dict:
        return (self.document.get("resources") or {}).get("jobs") or {}


def load_bundle(root: str | os.PathLike | None = None) -> Bundle:
    """Read ``databricks.yml`` under ``root`` and merge every file its ``include`` globs match."""
    root = Path(root) if root else default_bundle_root()
    main = _read_yaml(root / BUNDLE_FILE)
    document: dict = {}
    sources: dict = {}
    _merge(document, {k: v for k, v in main.items() if k != "include"}, "", sources, BUNDLE_FILE)
    for pattern in main.get("include") or []:
        for match in sorted(glob.glob(str(root / pattern))):
            relative = str(Path(match).relative_to(root))
            _merge(document, _read_yaml(Path(match)), "", sources, relative)
    return Bundle(root=root, document=document, sources=sources)
