"""``${...}`` references resolved the way the Databricks CLI resolves them, and ``{{...}}`` runtime values.

Two executors read the same bundle:

- a bundle target (``dev``, ``staging``, ``prod``): variables take the target's values;
  ``${bundle.*}`` and ``${var.*}`` are substituted; ``${workspace.*}`` gets the values a
  deploy would give them (with a placeholder user); ``${resources.<type>.<key>.<field>}``
  stays as written, because Databricks fills it in at deploy time from the deployed
  resource; it must name a declared resource, which is checked.
- ``local`` (the laptop): variables take their bundle defaults overridden by
  ``bundle/local_target.LOCAL_OVERRIDES``; ``${bundle.target}`` is ``local``; ``${workspace.file_path}``
  is the bundle root; a job's id is its key (``${resources.jobs.x.id}`` -> ``x``, which is
  what the local runner accepts as a job id), and any other resource field is read from the
  resource's own (resolved) configuration.

``{{job.parameters.x}}``, ``{{job.run_id}}``, ``{{task.name}}`` ... are dynamic value
references that Databricks substitutes when a run starts; ``substitute_dynamic`` does the
same for the local runner.
"""

from __future__ import annotations

import copy
import functools
import getpass
import os
import re
import subprocess
from dataclasses import dataclass, field

from healthcare_mlops.bundle import naming
from healthcare_mlops.bundle.definition import Bundle
from healthcare_mlops.errors import UserError
from healthcare_mlops.bundle.local_target import LOCAL_OVERRIDES, LOCAL_TARGET

REFERENCE = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*)\}")
DYNAMIC = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

# Placeholder identity used to resolve ${workspace.*} for a target when no workspace is reached.
PLACEHOLDER_USER = "deployer@example.com"
BUNDLE_VAR_PREFIX = "BUNDLE_VAR_"   # the CLI reads a variable's value from BUNDLE_VAR_<name>

# Fields Databricks computes for a deployed resource (besides ``id``), by resource type.
COMPUTED_FIELDS = {
    "apps": {"id", "name", "url", "service_principal_client_id", "service_principal_id",
             "service_principal_name", "app_status", "compute_status"},
    "jobs": {"id", "url"},
    "experiments": {"id", "url", "experiment_id"},
    "registered_models": {"id", "full_name", "url"},
    "clusters": {"id", "cluster_id", "url"},
    "model_serving_endpoints": {"id", "url", "endpoint_id"},
    "pipelines": {"id", "url"},
    "schemas": {"id", "full_name", "url"},
    "volumes": {"id", "full_name", "url"},
}

# The dynamic value references Databricks documents, as patterns on the reference's text.
DYNAMIC_PATTERNS = [re.compile(p) for p in (
    r"job\.(id|name|run_id|repair_count|trigger\.type|trigger\.file_arrival\.location)",
    r"job\.(start_time|trigger\.time)\.(iso_date|iso_datetime|is_weekday|is_weekend|timestamp_ms|"
    r"year|month|day|hour|minute|second|day_of_week|timezone)",
    r"job\.parameters\.[\w.-]+",
    r"task\.(name|run_id|execution_count|notebook_path)",
    r"tasks\.[\w-]+\.(run_id|result_state|error_code|execution_count|values\.[\w-]+)",
    r"workspace\.(id|url)",
    r"backfill\.iso_datetime",
)]


class Deferred(Exception):
    """The reference is filled in later (at deploy or run time): keep it as written."""


class Unresolved(Exception):
    """The reference cannot be resolved; the message says why."""


@dataclass
class ResolvedBundle:
    """One target's view of the bundle with every ``${...}`` it can resolve substituted."""

    bundle: Bundle
    target: str
    document: dict
    variables: dict
    problems: list = field(default_factory=list)   # (dotted path, message)
    workspace: dict = field(default_factory=dict)  # the ${workspace.*} values used

    @property
    def deployed(self) -> bool:
        """Whether this target is deployed to a workspace (the local pseudo-target is not)."""
        return self.target != LOCAL_TARGET

    def resources(self, rtype: str) -> dict:
        return (self.document.get("resources") or {}).get(rtype) or {}

    def jobs(self) -> dict:
        return self.resources("jobs")

    def job(self, job_key: str) -> dict:
        jobs = self.jobs()
        if job_key not in jobs:
            known = ", ".join(sorted(jobs)) or "none"
            raise UserError(f"no job '{job_key}' in the bundle (jobs: {known})")
        return jobs[job_key]


def _path(parent: str, key) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def _split_reference(reference: str) -> list:
    """``var.a.b[0]`` -> ``["var", "a", "b", 0]``."""
    parts: list = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", reference):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def _index(value, parts: list, reference: str):
    for part in parts:
        if isinstance(part, int) and isinstance(value, list) and part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise Unresolved(f"${{{reference}}}: '{part}' does not exist")
    return value


def _as_text(value, reference: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise Unresolved(f"${{{reference}}} is a complex value and cannot be part of a string")
    if value is None:
        raise Unresolved(f"${{{reference}}} has no value")
    return str(value)


def interpolate(value, lookup, path: str = "", problems: list | None = None):
    """Substitute every ``${...}`` in ``value`` (recursively) with ``lookup(reference)``.

    A string that is exactly one reference takes the referenced value as is (a list, a
    number); a reference inside a longer string is replaced by its text. ``lookup`` raises
    ``Deferred`` to keep a reference and ``Unresolved`` to report it at ``path``.
    """
    problems = problems if problems is not None else []
    if isinstance(value, dict):
        return {key: interpolate(item, lookup, _path(path, key), problems) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, lookup, _path(path, i), problems) for i, item in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = REFERENCE.fullmatch(value)
    if whole:
        try:
            return lookup(whole.group(1))
        except Deferred:
            return value
        except Unresolved as exc:
            problems.append((path, str(exc)))
            return value

    def replace(match: re.Match) -> str:
        try:
            return _as_text(lookup(match.group(1)), match.group(1))
        except Deferred:
            return match.group(0)
        except Unresolved as exc:
            problems.append((path, str(exc)))
            return match.group(0)

    return REFERENCE.sub(replace, value)


def _matches(pattern, value, path: str):
    """Every match of ``pattern`` in the strings of ``value``, as (dotted path, first group)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _matches(pattern, item, _path(path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _matches(pattern, item, _path(path, i))
    elif isinstance(value, str):
        for match in pattern.finditer(value):
            yield path, match.group(1)


def references(value, path: str = ""):
    """Every ``${...}`` in ``value`` as (dotted path, reference text)."""
    return _matches(REFERENCE, value, path)


def dynamic_references(value, path: str = ""):
    """Every ``{{...}}`` in ``value`` as (dotted path, reference text)."""
    return _matches(DYNAMIC, value, path)


def is_known_dynamic_reference(reference: str) -> bool:
    return any(pattern.fullmatch(reference) for pattern in DYNAMIC_PATTERNS)


def substitute_dynamic(text: str, values: dict) -> str:
    """Replace ``{{name}}`` in ``text`` by ``values[name]``; an unknown name is a UserError."""
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise UserError(f"'{{{{{name}}}}}' is not a value the local runner can provide "
                            f"(it provides: {', '.join(sorted(values))})")
        return str(values[name])

    return DYNAMIC.sub(replace, text)


# -- the contexts ----------------------------------------------------------------------

def _current_user(user_name: str) -> dict:
    """``${workspace.current_user.*}`` of ``user_name``, named as the CLI names them."""
    return {"userName": user_name, "user_name": user_name, "short_name": naming.short_name(user_name),
            "domain_friendly_name": naming.domain_friendly_name(user_name)}


def _workspace_context(bundle: Bundle, document: dict, target: str, user: str = PLACEHOLDER_USER) -> dict:
    name = (document.get("bundle") or {}).get("name", "bundle")
    if target == LOCAL_TARGET:
        try:
            local_user = getpass.getuser()
        except (KeyError, OSError):   # a container user without a name
            local_user = "local-user"
        root = str(bundle.root.resolve())
        return {"current_user": {**_current_user(local_user), "short_name": local_user},
                "root_path": root, "file_path": root, "artifact_path": f"{root}/dist",
                "state_path": f"{root}/.databricks", "resource_path": root, "host": "local"}
    workspace = document.get("workspace") or {}
    root = workspace.get("root_path") or f"/Workspace/Users/{user}/.bundle/{name}/{target}"
    context = {"current_user": _current_user(user),
               "root_path": root, "file_path": f"{root}/files", "artifact_path": f"{root}/artifacts",
               "state_path": f"{root}/state", "resource_path": f"{root}/resources",
               "host": workspace.get("host") or "https://workspace.example.com"}
    for key in ("file_path", "artifact_path", "state_path", "resource_path", "host"):
        if workspace.get(key):
            context[key] = workspace[key]
    return context


@functools.lru_cache(maxsize=8)
def _git_info(root) -> dict:
    """``${bundle.git.*}`` for a local run: what the CLI reads from the checkout at deploy time."""
    def git(*args: str) -> str:
        try:
            result = subprocess.run(["git", *args], cwd=str(root), capture_output=True, text=True,
                                    timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "origin_url": git("config", "--get", "remote.origin.url")}


def _variable_values(bundle: Bundle, target: str) -> dict:
    if target == LOCAL_TARGET:
        values = bundle.variable_defaults()
        values.update({k: v for k, v in LOCAL_OVERRIDES.items() if k in values})
        return values
    return bundle.target_variables(target)


def required_placeholder(name: str) -> str:
    """What a variable without default or lookup stands for offline: the value a deploy must pass."""
    return f"<{name}: --var {name}=... or {BUNDLE_VAR_PREFIX}{name}>"


def _lookup_placeholder(value):
    """A variable that only has a ``lookup`` (resolved on a workspace) gets a readable placeholder."""
    if isinstance(value, dict) and set(value) == {"lookup"} and isinstance(value["lookup"], dict):
        kind, name = next(iter(value["lookup"].items()), ("object", "?"))
        return f"<{kind} id of '{name}'>"
    return value


def _variable_spec(bundle: Bundle, name: str) -> dict:
    spec = bundle.variables().get(name)
    return spec if isinstance(spec, dict) else {}


def resolve_variables(bundle: Bundle, target: str, base_lookup, problems: list) -> dict:
    """Variable values for ``target`` with references between variables resolved."""
    raw = {name: _lookup_placeholder(value) for name, value in _variable_values(bundle, target).items()}
    for name, spec in bundle.variables().items():
        if raw.get(name) is None and isinstance(spec, dict) and "lookup" in spec:
            raw[name] = _lookup_placeholder({"lookup": spec["lookup"]})
        elif raw.get(name) is None and isinstance(spec, dict) and "default" not in spec:
            # required: the CLI takes BUNDLE_VAR_<name> (or --var) and refuses to deploy without it
            raw[name] = os.environ.get(BUNDLE_VAR_PREFIX + name, required_placeholder(name))
    resolved: dict = {}
    resolving: set = set()

    def value_of(name: str):
        if name in resolved:
            return resolved[name]
        if name not in raw:
            raise Unresolved(f"${{var.{name}}} is not a declared variable")
        if name in resolving:
            raise Unresolved(f"variable '{name}' refers to itself")
        resolving.add(name)
        local_problems: list = []
        value = interpolate(copy.deepcopy(raw[name]), lookup, f"variables.{name}", local_problems)
        resolving.discard(name)
        problems.extend(local_problems)
        if value is None and "lookup" not in _variable_spec(bundle, name):
            problems.append((f"variables.{name}", f"variable '{name}' has no value for target "
                             f"'{target}' (give it a default or a value in the target)"))
        resolved[name] = value
        return value

    def lookup(reference: str):
        parts = _split_reference(reference)
        if parts[0] == "var":
            if len(parts) < 2 or not isinstance(parts[1], str):
                raise Unresolved(f"${{{reference}}} does not name a variable")
            return _index(value_of(parts[1]), parts[2:], reference)
        return base_lookup(reference)

    for name in raw:
        value_of(name)
    return resolved


def resolve_target(bundle: Bundle, target: str, user: str = PLACEHOLDER_USER) -> ResolvedBundle:
    """The bundle as ``target`` sees it (``local`` or a bundle target), references substituted.

    ``user`` is the deploying identity ``${workspace.current_user.*}`` stands for (a placeholder
    unless the caller renders the bundle for a particular user).
    """
    if target == LOCAL_TARGET:
        document = copy.deepcopy({k: v for k, v in bundle.document.items() if k != "targets"})
    else:
        document = bundle.target_document(target)
    problems: list = []
    workspace_context = _workspace_context(bundle, document, target, user)
    base_lookup = _base_lookup(bundle, target, document, workspace_context)
    variables = resolve_variables(bundle, target, base_lookup, problems)

    def lookup(reference: str):
        parts = _split_reference(reference)
        if parts[0] == "var":
            if len(parts) < 2 or parts[1] not in variables:
                raise Unresolved(f"${{var.{parts[1] if len(parts) > 1 else ''}}} is not a declared variable")
            return _index(variables[parts[1]], parts[2:], reference)
        return base_lookup(reference)

    body = {k: v for k, v in document.items() if k != "variables"}
    body = interpolate(body, lookup, "", problems)
    resources_problems: list = []
    body = interpolate(body, _resource_lookup(body.get("resources") or {}, target), "", resources_problems)
    if target == LOCAL_TARGET:   # resources that refer to resources: one more pass
        body = interpolate(body, _resource_lookup(body.get("resources") or {}, target), "", [])
    problems.extend(resources_problems)
    body["variables"] = variables
    return ResolvedBundle(bundle=bundle, target=target, document=body, variables=variables,
                          problems=_unique(problems), workspace=workspace_context)


def _base_lookup(bundle: Bundle, target: str, document: dict, workspace_context: dict):
    """The lookup of ``${bundle.*}`` and ``${workspace.*}``; what only a deployment knows is ``Deferred``.

    Variables are looked up on top of this one (``${var.*}`` reaching it is undeclared).
    """
    bundle_context = {"name": (document.get("bundle") or {}).get("name"), "target": target}

    def base_lookup(reference: str):
        parts = _split_reference(reference)
        head = parts[0]
        if head == "bundle":
            if len(parts) >= 2 and parts[1] in bundle_context and bundle_context[parts[1]] is not None:
                return _index(bundle_context, parts[1:], reference)
            if target == LOCAL_TARGET and len(parts) == 3 and parts[1] == "git":
                return _git_info(bundle.root).get(parts[2], "")
            if len(parts) >= 2 and parts[1] in ("git", "uuid", "environment", "mode"):
                raise Deferred()
            raise Unresolved(f"${{{reference}}} is not a bundle field")
        if head == "workspace":
            if len(parts) >= 2 and parts[1] in workspace_context:
                return _index(workspace_context, parts[1:], reference)
            raise Unresolved(f"${{{reference}}} is not a workspace field")
        if head in ("resources", "artifacts"):
            raise Deferred()
        if head == "var":
            raise Unresolved(f"${{{reference}}} is not a declared variable")
        raise Unresolved(f"${{{reference}}} is not a reference Databricks can resolve "
                         f"(use var., bundle., workspace., resources. or artifacts.)")

    return base_lookup


def _resource_lookup(resources: dict, target: str):
    """The lookup of ``${resources.<type>.<key>.<field>}`` against the bundle's ``resources``.

    An undeclared resource or a field Databricks does not fill in is ``Unresolved``. Locally a
    resource's ``id`` is its key and a field set in the configuration is its value; anything
    else (and everything on a deployed target) is ``Deferred`` to the deployment.
    """
    def resource_lookup(reference: str):
        parts = _split_reference(reference)
        if parts[0] != "resources":
            raise Deferred()
        if len(parts) < 4 or not all(isinstance(p, str) for p in parts[1:3]):
            raise Unresolved(f"${{{reference}}} must be ${{resources.<type>.<key>.<field>}}")
        rtype, key, field_name = parts[1], parts[2], parts[3]
        group = resources.get(rtype) or {}
        if key not in group:
            declared = ", ".join(sorted(group)) or "none"
            raise Unresolved(f"${{{reference}}}: no {rtype} resource '{key}' is declared "
                             f"(declared {rtype}: {declared})")
        definition = group[key] if isinstance(group[key], dict) else {}
        in_config = field_name in definition
        if not in_config and field_name not in COMPUTED_FIELDS.get(rtype, {"id"}):
            raise Unresolved(f"${{{reference}}}: '{field_name}' is neither set on {rtype}.{key} "
                             f"nor a field Databricks fills in")
        if target != LOCAL_TARGET:
            raise Deferred()
        if field_name == "id" and not in_config:
            return key
        if in_config:
            value = _index(definition, parts[3:], reference)
            if isinstance(value, str) and "${" in value:
                raise Deferred()
            return value
        raise Deferred()

    return resource_lookup


def _unique(problems: list) -> list:
    seen: set = set()
    unique = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            unique.append(problem)
    return unique


def target_for_app_name(bundle: Bundle, app_name: str) -> str | None:
    """The target whose console app is called ``app_name`` (Databricks Apps set DATABRICKS_APP_NAME).

    The console's app.yaml cannot differ per target; this is how the console, started
    by Databricks Apps, finds its target and from it its catalog and schema. A name made
    per user (``${workspace.current_user.domain_friendly_name}`` in it) matches any user's.
    """
    for target in bundle.target_names():
        resolved = resolve_target(bundle, target)
        for app in (resolved.document.get("resources", {}).get("apps") or {}).values():
            if isinstance(app, dict) and _app_name_matches(str(app.get("name")), app_name):
                return target
    return None


def _app_name_matches(resolved: str, app_name: str) -> bool:
    """``app_name`` is ``resolved`` (an app name resolved for the placeholder user) for some user."""
    from healthcare_mlops.bundle.naming import domain_friendly_name

    if resolved == app_name:
        return True
    placeholder = domain_friendly_name(PLACEHOLDER_USER)
    if placeholder not in resolved:
        return False
    any_user = "[a-z0-9]+(?:-[a-z0-9]+)*"     # a domain-friendly name: what Apps allow
    return re.fullmatch(any_user.join(re.escape(part) for part in resolved.split(placeholder)), app_name) is not None

