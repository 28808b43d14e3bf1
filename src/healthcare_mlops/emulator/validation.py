"""Offline validation of the bundle: what a deploy would reject, found before a deploy does.

For every bundle target and for ``local``, after variable substitution:

- every job (and app, experiment, registered model, cluster ...) loads into the typed
  models of ``databricks-bundles`` (unknown fields and bad enum values are errors);
- every ``${var.X}`` is declared, every ``${resources.<type>.<key>.<field>}`` names a
  declared resource, and no other ``${...}`` is left that Databricks could not resolve;
- every ``spark_python_task.python_file`` exists, every task passes ``--target``,
  ``--catalog`` and ``--schema``, every ``depends_on`` names a task of the same job, the
  tasks of each job form a DAG, ``{{job.parameters.X}}`` names a parameter of the job;
- every schedule is a valid Quartz cron expression in a known time zone;
- the console's ``app.yaml`` has an argv ``command`` and its ``valueFrom`` names are
  resources of the app;
- the deploy-time rules of ``deploy_rules`` (self-references, ``run_as`` and apps, empty
  identities in production paths, parameters that must name what the target deploys).

Each problem names the file it comes from and the key path, e.g.
``resources/jobs.yml: resources.jobs.batch_inference.tasks[0].depends_on: task 'nope' is
not a task of job 'batch_inference'``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from healthcare_mlops.emulator.dag import find_cycle, task_graph
from healthcare_mlops.bundle.definition import Bundle, relative_display
from healthcare_mlops.emulator.deploy_rules import deploy_problems
from healthcare_mlops.bundle.interpolation import (ResolvedBundle, dynamic_references,
                                                   is_known_dynamic_reference, resolve_target)
from healthcare_mlops.emulator.quartz import quartz_errors
from healthcare_mlops.emulator.typed_models import (MODEL_CLASSES, locate_model_error, model_class,
                                                  typed_models_available)
from healthcare_mlops.errors import UserError
from healthcare_mlops.bundle.local_target import LOCAL_OVERRIDES, LOCAL_TARGET
from healthcare_mlops.settings import REQUIRED_TASK_PARAMETERS

TOP_LEVEL_KEYS = {"artifacts", "bundle", "experimental", "include", "permissions", "presets", "python",
                  "resources", "run_as", "scripts", "sync", "targets", "variables", "workspace"}
RESOURCE_TYPES = {
    "alerts", "apps", "catalogs", "clusters", "dashboards", "database_catalogs", "database_instances",
    "experiments", "external_locations", "genie_spaces", "instance_pools", "job_runs", "jobs",
    "model_serving_endpoints", "models", "pipelines", "postgres_branches", "postgres_catalogs",
    "postgres_databases", "postgres_endpoints", "postgres_projects", "postgres_roles",
    "postgres_synced_tables", "quality_monitors", "registered_models", "schemas", "secret_scopes",
    "secrets", "sql_warehouses", "synced_database_tables", "vector_search_endpoints",
    "vector_search_indexes", "volumes"}
TARGET_KEYS = {"artifacts", "bundle", "cluster_id", "compute_id", "default", "git", "mode", "permissions",
               "presets", "resources", "run_as", "sync", "variables", "workspace"}
TARGET_MODES = {"development", "production"}
VARIABLE_KEYS = {"default", "description", "lookup", "type"}

COMPUTE_KEYS = ("environment_key", "job_cluster_key", "new_cluster", "existing_cluster_id")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the bundle: the file, the key path in the bundle and what is wrong."""

    file: str
    path: str
    message: str
    targets: tuple = ()      # the targets it occurs in; empty when it occurs in every one

    def __str__(self) -> str:
        where = f" (target{'s' if len(self.targets) > 1 else ''} {', '.join(self.targets)})" \
            if self.targets else ""
        return f"{self.file}: {self.path}: {self.message}{where}"


class BundleInvalid(UserError):
    """The bundle has problems; ``problems`` lists them, the message has one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"the bundle has {len(problems)} problem{'s' if len(problems) != 1 else ''}:\n{lines}")


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


# -- the checks -------------------------------------------------------------------------------

class _Collector:
    """Problems of one target, turned into ``Problem`` with the file each path comes from."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.items: list = []      # (file, path, message)

    def add(self, path: str, message: str, file: str | None = None) -> None:
        self.items.append((file or self.bundle.source_of(path), path, message))


def _check_structure(bundle: Bundle, out: _Collector) -> None:
    """Collect the bundle's structural mistakes: unknown keys and fields, shapes, undeclared variables."""
    document = bundle.document
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            close = difflib.get_close_matches(key, sorted(TOP_LEVEL_KEYS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            out.add(key, f"unknown top-level key '{key}'{hint}")
    for rtype, group in (document.get("resources") or {}).items():
        if rtype not in RESOURCE_TYPES:
            close = difflib.get_close_matches(rtype, sorted(RESOURCE_TYPES), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            out.add(f"resources.{rtype}", f"unknown resource type '{rtype}'{hint}")
        for key, definition in (group or {}).items() if isinstance(group, dict) else []:
            if not isinstance(definition, dict):
                out.add(f"resources.{rtype}.{key}", "a resource must be a mapping")
    variables = document.get("variables") or {}
    for name, spec in variables.items():
        _check_variable(name, spec, out)
    _check_targets(document.get("targets") or {}, variables, out)
    for name in LOCAL_OVERRIDES:
        if name not in variables:
            out.add(f"LOCAL_OVERRIDES.{name}", f"LOCAL_OVERRIDES sets '{name}', which is not a declared variable",
                    file="src/healthcare_mlops/settings.py")
    _check_task_parameter_types(bundle, out)


def _check_variable(name: str, spec, out: _Collector) -> None:
    """Collect a variable declaration's unknown fields, wrong type, or a list or mapping default not complex."""
    path = f"variables.{name}"
    if not isinstance(spec, dict):
        out.add(path, "a variable must be a mapping with default/description/lookup/type")
        return
    for key in spec:
        if key not in VARIABLE_KEYS:
            out.add(_join(path, key), f"unknown variable field '{key}' (allowed: {', '.join(sorted(VARIABLE_KEYS))})")
    if "type" in spec and spec["type"] != "complex":
        out.add(_join(path, "type"), f"variable type must be 'complex', not '{spec['type']}'")
    if isinstance(spec.get("default"), (dict, list)) and spec.get("type") != "complex":
        out.add(_join(path, "default"), "a list or mapping default needs 'type: complex'")


def _check_targets(targets: dict, variables: dict, out: _Collector) -> None:
    """Collect the targets' unknown fields, bad modes, undeclared variables, and more than one default."""
    defaults = 0
    for target, spec in targets.items():
        path = f"targets.{target}"
        spec = spec or {}
        for key in spec:
            if key not in TARGET_KEYS:
                close = difflib.get_close_matches(key, sorted(TARGET_KEYS), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                out.add(_join(path, key), f"unknown target field '{key}'{hint}")
        if spec.get("mode") is not None and spec.get("mode") not in TARGET_MODES:
            out.add(_join(path, "mode"), f"mode must be development or production, not '{spec['mode']}'")
        defaults += bool(spec.get("default"))
        for name in spec.get("variables") or {}:
            if name not in variables:
                out.add(_join(_join(path, "variables"), name),
                        f"target '{target}' sets '{name}', which is not a declared variable")
    if defaults > 1:
        out.add("targets", "more than one target has default: true")


def _check_task_parameter_types(bundle: Bundle, out: _Collector) -> None:
    """Collect task parameters that are not strings in the YAML (Databricks passes argv strings)."""
    for job_key, job in bundle.jobs().items():
        for i, task in enumerate((job or {}).get("tasks") or []):
            params = ((task or {}).get("spark_python_task") or {}).get("parameters") or []
            for j, param in enumerate(params if isinstance(params, list) else []):
                if not isinstance(param, str):
                    out.add(f"resources.jobs.{job_key}.tasks[{i}].spark_python_task.parameters[{j}]",
                            f"task parameter {param!r} must be a string (quote it)")


def python_file_location(resolved: ResolvedBundle, job_key: str, python_file: str) -> Path | None:
    """Where a task's python_file lives in the bundle, or None for a path outside it (workspace, git)."""
    bundle = resolved.bundle
    file_path = str(resolved.workspace.get("file_path", ""))
    if file_path and python_file.startswith(file_path + "/"):
        return (bundle.root / python_file[len(file_path) + 1:]).resolve()
    if python_file.startswith("/Workspace/") or python_file.startswith("dbfs:") or "://" in python_file:
        return None
    candidate = Path(python_file)
    if candidate.is_absolute():
        return candidate.resolve()
    return (bundle.source_dir(f"resources.jobs.{job_key}") / candidate).resolve()


def _check_typed(kind: str, value: dict, path: str, out: "_Collector") -> None:
    """The first field the typed databricks-bundles model of ``kind`` refuses, if any."""
    cls = model_class(kind)
    found = locate_model_error(cls, value, path) if cls else None
    if found:
        out.add(*found)


def _check_job(resolved: ResolvedBundle, job_key: str, job: dict, out: _Collector, typed: bool) -> None:
    """Collect what is wrong with one job: its tasks, their references, parameters and schedule."""
    path = f"resources.jobs.{job_key}"
    if typed:
        _check_typed("jobs", job, path, out)
    tasks = job.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        out.add(path, f"job '{job_key}' has no tasks")
        return
    parameter_names = [p.get("name") for p in job.get("parameters") or [] if isinstance(p, dict)]
    for name in {n for n in parameter_names if parameter_names.count(n) > 1}:
        out.add(f"{path}.parameters", f"job parameter '{name}' is declared more than once")
    known = _check_task_keys(job_key, path, tasks, out)
    declared = {"job_cluster_key": {c.get("job_cluster_key") for c in job.get("job_clusters") or []
                                    if isinstance(c, dict)},
                "environment_key": {e.get("environment_key") for e in job.get("environments") or []
                                    if isinstance(e, dict)}}
    for i, task in enumerate(tasks):
        if isinstance(task, dict):
            _check_task(resolved, job_key, task, f"{path}.tasks[{i}]", known, declared, out)
    cycle = find_cycle(task_graph([t for t in tasks if isinstance(t, dict)]))
    if cycle:
        out.add(f"{path}.tasks", f"the tasks of job '{job_key}' form a cycle: {' -> '.join(cycle)}")
    _check_dynamic_references(job_key, path, job, parameter_names, out)
    schedule = job.get("schedule")
    if isinstance(schedule, dict):
        _check_schedule(f"{path}.schedule", schedule, out)


def _check_task_keys(job_key: str, path: str, tasks: list, out: _Collector) -> set:
    """Collect tasks that are not mappings, lack a ``task_key`` or repeat one; the job's task keys."""
    keys: list = []
    for i, task in enumerate(tasks):
        task_path = f"{path}.tasks[{i}]"
        if not isinstance(task, dict):
            out.add(task_path, "a task must be a mapping")
            continue
        key = task.get("task_key")
        if not key:
            out.add(task_path, "task has no task_key")
        elif key in keys:
            out.add(_join(task_path, "task_key"), f"task_key '{key}' is used twice in job '{job_key}'")
        keys.append(key)
    return set(keys)


def _check_task(resolved: ResolvedBundle, job_key: str, task: dict, task_path: str, known: set,
                declared: dict, out: _Collector) -> None:
    """Collect one task's broken references (dependencies, job cluster, environment), missing compute and file."""
    for dependency in task.get("depends_on") or []:
        name = dependency.get("task_key") if isinstance(dependency, dict) else dependency
        if name not in known:
            out.add(_join(task_path, "depends_on"), f"task '{name}' is not a task of job '{job_key}'")
    if task.get("job_cluster_key") and task["job_cluster_key"] not in declared["job_cluster_key"]:
        out.add(_join(task_path, "job_cluster_key"),
                f"job cluster '{task['job_cluster_key']}' is not declared in job '{job_key}'.job_clusters")
    if task.get("environment_key") and task["environment_key"] not in declared["environment_key"]:
        out.add(_join(task_path, "environment_key"),
                f"environment '{task['environment_key']}' is not declared in job '{job_key}'.environments")
    if not any(task.get(k) for k in COMPUTE_KEYS):
        out.add(task_path, "task has no compute: set environment_key (serverless, with the wheel) "
                           "or job_cluster_key")
    python_task = task.get("spark_python_task")
    if isinstance(python_task, dict):
        _check_python_task(resolved, job_key, python_task, _join(task_path, "spark_python_task"), out)


def _check_dynamic_references(job_key: str, path: str, job: dict, parameter_names: list, out: _Collector) -> None:
    """Collect ``{{...}}`` references to undeclared job parameters or to values Databricks does not know."""
    references = [*dynamic_references(job.get("tasks"), f"{path}.tasks"),
                  *dynamic_references(job.get("parameters") or [], f"{path}.parameters")]
    for ref_path, reference in references:
        if reference.startswith("job.parameters."):
            name = reference[len("job.parameters."):]
            if name not in parameter_names:
                declared = ", ".join(n for n in parameter_names if n) or "none"
                out.add(ref_path, f"'{{{{{reference}}}}}': '{name}' is not a parameter of job "
                                  f"'{job_key}' (parameters: {declared})")
        elif not is_known_dynamic_reference(reference):
            out.add(ref_path, f"'{{{{{reference}}}}}' is not a dynamic value reference Databricks knows")


def _check_schedule(path: str, schedule: dict, out: _Collector) -> None:
    """Collect an invalid Quartz cron expression or an unknown time zone of a job's schedule."""
    expression = schedule.get("quartz_cron_expression")
    for error in quartz_errors(expression):
        out.add(f"{path}.quartz_cron_expression", f"invalid Quartz cron '{expression}': {error}")
    zone = schedule.get("timezone_id")
    if isinstance(zone, str) and "${" not in zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            out.add(f"{path}.timezone_id", f"'{zone}' is not a known time zone")


def _check_python_task(resolved: ResolvedBundle, job_key: str, task: dict, path: str, out: _Collector) -> None:
    python_file = task.get("python_file")
    if not isinstance(python_file, str) or not python_file:
        out.add(path, "spark_python_task has no python_file")
    elif task.get("source") != "GIT" and "${" not in python_file:
        location = python_file_location(resolved, job_key, python_file)
        if location is not None and not location.is_file():
            out.add(_join(path, "python_file"),
                    f"{python_file}: file not found ({relative_display(location, resolved.bundle.root)})")
    params = task.get("parameters") or []
    if isinstance(params, list):
        names = {str(p)[2:].partition("=")[0] for p in params if isinstance(p, str) and str(p).startswith("--")}
        missing = [name for name in REQUIRED_TASK_PARAMETERS if name not in names]
        if missing:
            out.add(_join(path, "parameters"),
                    "every task passes " + ", ".join(f"--{n}" for n in REQUIRED_TASK_PARAMETERS)
                    + f"; missing: {', '.join('--' + m for m in missing)}")


def _read_app_config(path: Path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _check_app(resolved: ResolvedBundle, app_key: str, app: dict, out: _Collector, typed: bool) -> None:
    bundle = resolved.bundle
    path = f"resources.apps.{app_key}"
    if typed:
        _check_typed("apps", app, path, out)
    resources = [r for r in app.get("resources") or [] if isinstance(r, dict)]
    names = [r.get("name") for r in resources]
    for name in {n for n in names if names.count(n) > 1}:
        out.add(f"{path}.resources", f"app resource name '{name}' is used twice")
    source = app.get("source_code_path")
    if not isinstance(source, str) or "${" in source:
        return
    folder = (bundle.source_dir(path) / source).resolve()
    if not folder.is_dir():
        out.add(f"{path}.source_code_path", f"{source}: folder not found")
        return
    config_path = bundle.app_config_path(app_key)
    if config_path is None:
        if not app.get("config"):
            out.add(f"{path}.source_code_path", f"no app.yaml in {relative_display(folder, bundle.root)}")
        return
    config_file = relative_display(config_path, bundle.root)
    try:
        config = _read_app_config(config_path)
    except yaml.YAMLError as exc:
        out.add("", f"not valid YAML: {exc}", file=config_file)
        return
    if not isinstance(config, dict):
        out.add("", "expected a mapping with command and env", file=config_file)
        return
    command = config.get("command")
    if not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
        out.add("command", "command must be a non-empty list of strings (an argv list)", file=config_file)
    declared = ", ".join(n for n in names if n) or "none"
    for i, entry in enumerate(config.get("env") or []):
        entry_path = f"env[{i}]"
        if not isinstance(entry, dict) or not entry.get("name"):
            out.add(entry_path, "an env entry needs a name", file=config_file)
            continue
        has_value, has_from = "value" in entry, "valueFrom" in entry
        if has_value == has_from:
            out.add(entry_path, f"env '{entry['name']}' needs exactly one of value and valueFrom", file=config_file)
        if has_from and entry["valueFrom"] not in names:
            out.add(f"{entry_path}.valueFrom",
                    f"'{entry['valueFrom']}' is not a resource of app '{app_key}' "
                    f"({bundle.source_of(path)}: {path}.resources: {declared})", file=config_file)


def _validate_target(resolved: ResolvedBundle, out: _Collector, typed: bool) -> None:
    for path, message in resolved.problems:
        out.add(path, message)
    for path, message in deploy_problems(resolved.bundle, resolved):
        out.add(path, message)
    for job_key, job in resolved.jobs().items():
        if isinstance(job, dict):
            _check_job(resolved, job_key, job, out, typed)
    for app_key, app in resolved.resources("apps").items():
        if isinstance(app, dict):
            _check_app(resolved, app_key, app, out, typed)
    if typed:
        for rtype in MODEL_CLASSES:
            if rtype in ("jobs", "apps"):
                continue
            cls = model_class(rtype)
            for key, definition in resolved.resources(rtype).items():
                if cls is not None and isinstance(definition, dict):
                    found = locate_model_error(cls, definition, f"resources.{rtype}.{key}")
                    if found:
                        out.add(*found)


def validate_bundle(bundle: Bundle, targets: list[str] | None = None, typed: bool = True) -> list[Problem]:
    """Every problem of the bundle for ``targets`` (default: every bundle target and ``local``)."""
    if typed and not typed_models_available():
        raise UserError("typed validation needs the databricks-bundles package "
                        "(pip install -e '.[test]'), or pass typed=False")
    targets = list(targets) if targets is not None else [*bundle.target_names(), LOCAL_TARGET]
    structure = _Collector(bundle)
    _check_structure(bundle, structure)
    found: dict = {}
    order: list = []
    for item in structure.items:
        if item not in found:
            found[item] = set(targets)
            order.append(item)
    for target in targets:
        out = _Collector(bundle)
        try:
            resolved = resolve_target(bundle, target)
        except UserError as exc:
            out.add(f"targets.{target}", str(exc))
        else:
            _validate_target(resolved, out, typed)
        for item in out.items:
            if item not in found:
                found[item] = set()
                order.append(item)
            found[item].add(target)
    problems = []
    for item in order:
        where = () if found[item] >= set(targets) else tuple(t for t in targets if t in found[item])
        problems.append(Problem(*item, targets=where))
    return problems


def check_bundle(bundle: Bundle, targets: list[str] | None = None, typed: bool = True) -> None:
    """Raise ``BundleInvalid`` listing every problem, if there is any."""
    problems = validate_bundle(bundle, targets, typed)
    if problems:
        raise BundleInvalid(problems)
