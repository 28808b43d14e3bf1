"""Load ``databricks.yml`` and its included resource files into one bundle document.

The bundle is the single definition of every job. This module reads it the way the
Databricks CLI does for the fields the project uses: ``include`` globs, ``variables``
with defaults, per-target variable overrides, and a target's ``resources`` overrides
merged into the top level (mappings merged key by key, sequences appended, then job
tasks, job clusters, job parameters and job environments merged by their key and app
resources merged by name, as ``databricks bundle validate`` shows them).

The bundle is read from the checkout (``databricks.yml`` next to ``src/``). An installed
wheel carries a copy of ``databricks.yml`` and ``resources/`` (see ``pyproject.toml``)
and falls back to it when there is no checkout.
"""

from __future__ import annotations

import copy
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from healthcare_mlops.errors import UserError

BUNDLE_ROOT_ENV = "HEALTHCARE_MLOPS_BUNDLE_ROOT"
BUNDLE_FILE = "databricks.yml"
APP_CONFIG_FILES = ("app.yaml", "app.yml")
PACKAGED_BUNDLE_DIR = Path(__file__).resolve().parents[1] / "_bundle"

# Keys of a target that are merged into the top level of the bundle (``mode`` and
# ``default`` describe the target itself; ``variables`` only set values).
TARGET_MERGED_KEYS = ("artifacts", "bundle", "workspace", "resources", "permissions", "presets",
                      "run_as", "sync", "git", "cluster_id")

# Sequences that the CLI merges element by element on a key after a target override
# (everything else in a sequence is appended): (resource type, field, key of an element).
KEYED_SEQUENCES = (
    ("jobs", "tasks", "task_key"),
    ("jobs", "job_clusters", "job_cluster_key"),
    ("jobs", "parameters", "name"),
    ("jobs", "environments", "environment_key"),
    ("pipelines", "clusters", "label"),
    ("apps", "resources", "name"),
)


def _checkout_root() -> Path:
    return Path(__file__).resolve().parents[3]


def default_bundle_root() -> Path:
    """$HEALTHCARE_MLOPS_BUNDLE_ROOT, else the checkout's root, else the copy packaged in the wheel."""
    if os.environ.get(BUNDLE_ROOT_ENV):
        return Path(os.environ[BUNDLE_ROOT_ENV])
    checkout = _checkout_root()
    if (checkout / BUNDLE_FILE).is_file() or not (PACKAGED_BUNDLE_DIR / BUNDLE_FILE).is_file():
        return checkout
    return PACKAGED_BUNDLE_DIR


def _read_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise UserError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return document


def _merge_file(base: dict, extra: dict, sources: dict, source: str) -> None:
    """Merge one configuration file into the bundle document, as the CLI merges includes.

    Each resource (``resources.<type>.<key>``) and each target must be defined in one file
    only; the file that defines it is remembered for error messages.
    """
    for key, value in extra.items():
        if key == "resources" and isinstance(value, dict):
            resources = base.setdefault("resources", {})
            for rtype, items in value.items():
                if not isinstance(items, dict):
                    raise UserError(f"{source}: resources.{rtype} must be a mapping of resource keys")
                group = resources.setdefault(rtype, {})
                for rkey, definition in items.items():
                    dotted = f"resources.{rtype}.{rkey}"
                    if rkey in group:
                        raise UserError(f"{source}: {dotted} is already defined in {sources[dotted]}")
                    group[rkey] = definition
                    sources[dotted] = source
        elif key in ("targets", "variables") and isinstance(value, dict):
            group = base.setdefault(key, {})
            for name, definition in value.items():
                dotted = f"{key}.{name}"
                if name in group:
                    raise UserError(f"{source}: {dotted} is already defined in {sources[dotted]}")
                group[name] = definition
                sources[dotted] = source
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
            sources.setdefault(key, source)
        else:
            base[key] = value
            sources.setdefault(key, source)


def _deep_merge(base: dict, extra: dict) -> dict:
    """Mappings merged key by key, sequences appended, scalars replaced (the CLI's merge)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        elif isinstance(value, list) and isinstance(base.get(key), list):
            base[key] = base[key] + copy.deepcopy(value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _merge_by_key(items: list, key: str) -> list:
    """Elements that share ``key`` merged into the first of them (later ones override)."""
    merged: list = []
    index: dict = {}
    for item in items:
        name = item.get(key) if isinstance(item, dict) else None
        if name is None or name not in index:
            if name is not None:
                index[name] = len(merged)
            merged.append(copy.deepcopy(item))
        else:
            _deep_merge(merged[index[name]], item)
    return merged


def merge_keyed_sequences(document: dict) -> dict:
    """Tasks by task_key, job clusters by job_cluster_key, ... (see ``KEYED_SEQUENCES``)."""
    resources = document.get("resources") or {}
    for rtype, field_name, key in KEYED_SEQUENCES:
        for definition in (resources.get(rtype) or {}).values():
            if isinstance(definition, dict) and isinstance(definition.get(field_name), list):
                definition[field_name] = _merge_by_key(definition[field_name], key)
    return document


@dataclass
class Bundle:
    """The merged bundle document and the file each resource, variable and target came from."""

    root: Path
    document: dict
    sources: dict
    files: list = field(default_factory=list)

    # -- where things come from -------------------------------------------------------
    def source_of(self, dotted_key: str) -> str:
        """The file that defines ``dotted_key`` (or its closest defined parent)."""
        parts = dotted_key.replace("[", ".[").split(".")
        while parts:
            key = ".".join(parts).replace(".[", "[")
            if key in self.sources:
                return self.sources[key]
            parts.pop()
        for key, source in self.sources.items():     # a group only its members were recorded for
            if key.startswith(dotted_key + "."):
                return source
        return BUNDLE_FILE

    def source_dir(self, dotted_key: str) -> Path:
        """The directory relative paths in ``dotted_key`` are resolved against (its file's folder)."""
        return (self.root / self.source_of(dotted_key)).parent

    # -- variables and targets --------------------------------------------------------
    def variables(self) -> dict:
        return self.document.get("variables") or {}

    def variable_defaults(self) -> dict:
        return {name: (spec or {}).get("default") if isinstance(spec, dict) else spec
                for name, spec in self.variables().items()}

    def target_names(self) -> list[str]:
        return list((self.document.get("targets") or {}).keys())

    def default_target(self) -> str | None:
        for name, target in (self.document.get("targets") or {}).items():
            if (target or {}).get("default"):
                return name
        return None

    def target(self, target: str) -> dict:
        targets = self.document.get("targets") or {}
        if target not in targets:
            raise UserError(f"unknown bundle target '{target}' (known: {', '.join(targets)})")
        return targets[target] or {}

    def target_variables(self, target: str) -> dict:
        """Variable values for ``target``: defaults, then the target's ``variables`` block.

        A target may give a plain value or a mapping with ``default`` (or ``lookup``) as the
        CLI accepts; a lookup is resolved only on a workspace, so it stays a lookup here.
        """
        values = self.variable_defaults()
        for name, value in (self.target(target).get("variables") or {}).items():
            if isinstance(value, dict) and ("default" in value or "lookup" in value):
                values[name] = value.get("default", {"lookup": value.get("lookup")})
            else:
                values[name] = value
        return values

    def target_document(self, target: str) -> dict:
        """The bundle as the CLI sees it for ``target``: its overrides merged into the top level."""
        spec = self.target(target)
        document = copy.deepcopy({k: v for k, v in self.document.items() if k != "targets"})
        for key in TARGET_MERGED_KEYS:
            if key in spec and spec[key] is not None:
                if isinstance(spec[key], dict) and isinstance(document.get(key), dict):
                    _deep_merge(document[key], spec[key])
                elif isinstance(spec[key], list) and isinstance(document.get(key), list):
                    document[key] = document[key] + copy.deepcopy(spec[key])
                else:
                    document[key] = copy.deepcopy(spec[key])
        variables = document.get("variables") or {}
        for name, value in (spec.get("variables") or {}).items():
            if name in variables and isinstance(variables[name], dict):
                if isinstance(value, dict) and ("default" in value or "lookup" in value):
                    variables[name] = {**{k: v for k, v in variables[name].items()
                                          if k not in ("default", "lookup")}, **value}
                else:
                    variables[name] = {**{k: v for k, v in variables[name].items() if k != "lookup"},
                                       "default": value}
        return merge_keyed_sequences(document)

    # -- resources ----------------------------------------------------------------------
    def resources(self, rtype: str) -> dict:
        return (self.document.get("resources") or {}).get(rtype) or {}

    def jobs(self) -> dict:
        return self.resources("jobs")

    def apps(self) -> dict:
        return self.resources("apps")

    def app_config_path(self, app_key: str) -> Path | None:
        """The ``app.yaml`` of an app whose source code is in this bundle (None if it has none)."""
        app = self.apps().get(app_key) or {}
        source = app.get("source_code_path")
        if not isinstance(source, str) or "${" in source:
            return None
        folder = (self.source_dir(f"resources.apps.{app_key}") / source).resolve()
        for name in APP_CONFIG_FILES:
            if (folder / name).is_file():
                return folder / name
        return None

    def target_for_app_name(self, app_name: str) -> str | None:
        """The target whose console app is called ``app_name`` (Databricks Apps set DATABRICKS_APP_NAME).

        The console's app.yaml cannot differ per target; this is how the console, started
        by Databricks Apps, finds its target and from it its catalog and schema. A name made
        per user (``${workspace.current_user.domain_friendly_name}`` in it) matches any user's.
        """
        from healthcare_mlops.bundle.interpolation import resolve_target

        for target in self.target_names():
            resolved = resolve_target(self, target)
            for app in (resolved.document.get("resources", {}).get("apps") or {}).values():
                if isinstance(app, dict) and _app_name_matches(str(app.get("name")), app_name):
                    return target
        return None


def _app_name_matches(resolved: str, app_name: str) -> bool:
    """``app_name`` is ``resolved`` (an app name resolved for the placeholder user) for some user."""
    from healthcare_mlops.bundle.interpolation import PLACEHOLDER_USER
    from healthcare_mlops.bundle.naming import domain_friendly_name

    if resolved == app_name:
        return True
    placeholder = domain_friendly_name(PLACEHOLDER_USER)
    if placeholder not in resolved:
        return False
    any_user = "[a-z0-9]+(?:-[a-z0-9]+)*"     # a domain-friendly name: what Apps allow
    return re.fullmatch(any_user.join(re.escape(part) for part in resolved.split(placeholder)), app_name) is not None


def relative_display(path: str | os.PathLike, root: Path) -> str:
    """``path`` relative to the bundle root when inside it, POSIX style."""
    try:
        return str(PurePosixPath(Path(path).resolve().relative_to(root.resolve())))
    except ValueError:
        return str(path)


def load_bundle(root: str | os.PathLike | None = None) -> Bundle:
    """Read ``databricks.yml`` under ``root`` and merge every file its ``include`` globs match."""
    root = (Path(root) if root else default_bundle_root()).resolve()
    main = _read_yaml(root / BUNDLE_FILE)
    document: dict = {}
    sources: dict = {}
    files = [BUNDLE_FILE]
    _merge_file(document, {k: v for k, v in main.items() if k != "include"}, sources, BUNDLE_FILE)
    includes = main.get("include") or []
    if not isinstance(includes, list):
        raise UserError(f"{BUNDLE_FILE}: include must be a list of path globs")
    for pattern in includes:
        for match in sorted(glob.glob(str(root / pattern), recursive=True)):
            relative = relative_display(match, root)
            if relative in files:
                continue
            files.append(relative)
            extra = _read_yaml(Path(match))
            if "include" in extra:
                raise UserError(f"{relative}: include is only allowed in {BUNDLE_FILE}")
            _merge_file(document, extra, sources, relative)
    document.setdefault("include", includes)
    return Bundle(root=root, document=document, sources=sources, files=files)
