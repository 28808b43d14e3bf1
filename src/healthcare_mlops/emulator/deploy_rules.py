"""Deploy-time rules: what ``databricks bundle deploy`` (or the first run) refuses, found offline.

``databricks bundle validate`` passes all of these; a deploy does not. Each rule returns
(dotted path, message) pairs for one bundle target; ``validation`` adds the file.

- the deploy plan's dependency graph must have no cycle (``deploy_plan``: every
  ``${resources...}`` is an edge, a resource naming itself included; Terraform calls that a
  "Self-referential block"): inside a job, ``{{job.id}}`` is its id;
- ``run_as`` must name exactly one, non-empty identity, and it cannot be combined with
  ``apps`` unless it names the deployer (Databricks Apps run as their deployer: "apps do not
  support a setting a run_as user that is different from the owner");
- the CLI's target-mode rules (development: per-user paths and prefix, no UNPAUSED preset;
  production: an explicit root path) and ``lifecycle.started`` only with the direct engine;
- in development mode, the names it does not prefix (apps, volumes, the serving endpoint the
  promotion creates) name the deploying user (a project rule: the CLI would let two
  developers share them);
- a production target's workspace paths must not have an empty segment (an empty variable);
- task parameters that name a deployed thing (``--model_name``, ``--experiment_name``,
  ``--*_job_id``, and ``--serving_endpoint_name`` when the bundle deploys
  endpoints) must refer to the resource this target deploys (``${resources.<type>.<key>.<field>}``,
  or ``{{job.id}}`` for the job itself), never a literal or a variable: in development mode
  the deployed name differs from the variable. (Without an endpoint resource the endpoint
  is the one the promotion creates from ``serving_endpoint_name``: nothing to refer to.)
"""

from __future__ import annotations

import re

from healthcare_mlops.bundle import naming
from healthcare_mlops.bundle.definition import Bundle
from healthcare_mlops.emulator.deploy_plan import plan_problems
from healthcare_mlops.bundle.interpolation import PLACEHOLDER_USER, REFERENCE, ResolvedBundle

# task parameter -> (resource type, field) of the deployed thing it must name
NAMED_PARAMETERS = {
    "model_name": ("registered_models", "name"),
    "experiment_name": ("experiments", "name"),
}
APP_NAME_PARAMETER = "app_name"
JOB_ID_PARAMETER = re.compile(r"(?:\w+_)?job_id")
ENDPOINT_PARAMETER = "serving_endpoint_name"
OWN_JOB_ID = "{{job.id}}"
APPS_RUN_AS = ("run_as cannot be combined with apps: Databricks Apps do not support a run_as identity "
               "different from the deployer (the CLI: \"apps do not support a setting a run_as user that is "
               "different from the owner\"); deploy the target as the identity its jobs should run as")


def plan_cycles(resolved: ResolvedBundle) -> list[tuple[str, str]]:
    """A cycle in the deploy plan's dependency graph (``deploy_plan``), a self-reference included."""
    found = []
    for path, message in plan_problems(resolved.document):
        if "refers to itself" in message:
            message += "; Terraform: Self-referential block"
            if path.startswith("resources.jobs."):
                message += f"; use {OWN_JOB_ID} for a job's own id at run time"
        found.append((path, message))
    return found


def _run_as_path(bundle: Bundle, target: str) -> str:
    return f"targets.{target}.run_as" if "run_as" in bundle.target(target) else "run_as"


def run_as_problems(bundle: Bundle, resolved: ResolvedBundle) -> list[tuple[str, str]]:
    """``run_as`` with no identity, with two, or together with apps."""
    run_as = resolved.document.get("run_as")
    if "run_as" not in resolved.document:
        return []
    path = _run_as_path(bundle, resolved.target)
    run_as = run_as if isinstance(run_as, dict) else {}
    identities = {k: str(run_as.get(k) or "").strip() for k in ("service_principal_name", "user_name")}
    named = [k for k, v in identities.items() if v]
    found = []
    if not named:
        found.append((path, "run_as must name exactly one identity, and service_principal_name and user_name "
                            "are both empty (the CLI: \"run_as section must specify exactly one identity\"); "
                            "is the variable it uses empty for this target?"))
    elif len(named) > 1:
        found.append((path, "run_as names both service_principal_name and user_name; name exactly one"))
    if resolved.resources("apps") and named and identities[named[0]] != PLACEHOLDER_USER:
        found.append((path, APPS_RUN_AS + f" (apps: {', '.join(sorted(resolved.resources('apps')))})"))
    return found


WORKSPACE_PATHS = ("root_path", "file_path", "resource_path", "artifact_path", "state_path")


def target_mode_problems(bundle: Bundle, resolved: ResolvedBundle) -> list[tuple[str, str]]:
    """What the CLI's target-mode validation refuses (its ``validate_target_mode``).

    Development: no ``presets.trigger_pause_status: UNPAUSED``; a ``presets.name_prefix`` and
    every workspace path set explicitly name the deploying user (so two developers never
    share a deployment). Production: an explicit ``workspace.root_path`` unless every job has
    its own ``run_as`` (a service principal deploying gets only a recommendation; offline the
    deployer is a person, the stricter case).
    """
    mode = bundle.target(resolved.target).get("mode")
    document = resolved.document
    presets = document.get("presets") or {}
    user = resolved.workspace.get("current_user") or {}
    identifiers = [str(user.get(k)) for k in ("userName", "short_name", "domain_friendly_name") if user.get(k)]
    found = []
    if mode == naming.DEVELOPMENT:
        if presets.get("trigger_pause_status") == "UNPAUSED":
            found.append(("presets.trigger_pause_status", "target with 'mode: development' cannot set trigger "
                                                          "pause status to UNPAUSED by default (the CLI refuses it)"))
        prefix = presets.get("name_prefix")
        if prefix and not any(name in str(prefix) for name in identifiers):
            found.append(("presets.name_prefix", "prefix should contain the current username or "
                                                 "${workspace.current_user.short_name} to ensure uniqueness when using "
                                                 "'mode: development' (the CLI refuses it)"))
        workspace = document.get("workspace") or {}
        for key in WORKSPACE_PATHS:
            value = workspace.get(key)
            if value and not any(name in str(value) for name in identifiers[:2]):
                found.append((f"workspace.{key}", f"{key} must start with '~/' or contain the current username "
                                                  "to ensure uniqueness when using 'mode: development' "
                                                  "(the CLI refuses it)"))
    elif mode == "production":
        jobs = [job for job in resolved.jobs().values() if isinstance(job, dict)]
        if not (document.get("workspace") or {}).get("root_path") and not (jobs and all(j.get("run_as") for j in jobs)):
            found.append((f"targets.{resolved.target}",
                          "target with 'mode: production' must set 'workspace.root_path' "
                          "to make sure only one copy is deployed (the CLI refuses it when a person deploys)"))
    return found


# what development mode leaves unprefixed: (resource type, name field) and the variables the
# promotion names things by (the endpoint is made at run time, so no mode renames it)
UNPREFIXED_NAMES = (("apps", "name"), ("volumes", "name"))
RUN_TIME_NAME_VARIABLES = ("serving_endpoint_name",)


def per_user_names(bundle: Bundle, resolved: ResolvedBundle) -> list[tuple[str, str]]:
    """In development mode, every name development mode does not prefix must name the deploying user.

    Otherwise two developers deploy (or promote to) the same app, volume or endpoint. A
    project rule, not the CLI's: the CLI deploys both, and the second overwrites the first.
    """
    if bundle.target(resolved.target).get("mode") != naming.DEVELOPMENT:
        return []
    user = resolved.workspace.get("current_user") or {}
    identifiers = [str(user.get(k)) for k in ("short_name", "domain_friendly_name") if user.get(k)]
    found = []
    named = [(f"resources.{rtype}.{key}.{field_name}", definition.get(field_name))
             for rtype, field_name in UNPREFIXED_NAMES
             for key, definition in resolved.resources(rtype).items() if isinstance(definition, dict)]
    named += [(f"targets.{resolved.target}.variables.{name}", resolved.variables.get(name))
              for name in RUN_TIME_NAME_VARIABLES if name in resolved.variables]
    for path, value in named:
        if value and not any(identifier in str(value) for identifier in identifiers):
            found.append((path, f"'{value}' is the same for every developer: development mode does not prefix it, "
                                f"so put ${{workspace.current_user.domain_friendly_name}} (or short_name) in it"))
    return found


def app_lifecycle_problems(resolved: ResolvedBundle) -> list[tuple[str, str]]:
    """``lifecycle.started`` on an app needs the direct engine (the CLI refuses it with Terraform)."""
    engine = (resolved.document.get("bundle") or {}).get("engine")
    if engine != "terraform":
        return []
    return [(f"resources.apps.{key}.lifecycle.started", "lifecycle.started is only supported in direct deployment mode "
                                                        "(bundle.engine: terraform)")
            for key, app in resolved.resources("apps").items()
            if isinstance(app, dict) and (app.get("lifecycle") or {}).get("started") is not None]


def empty_path_segments(bundle: Bundle, resolved: ResolvedBundle) -> list[tuple[str, str]]:
    """A production target's workspace path with ``//`` in it: a variable it uses is empty."""
    if bundle.target(resolved.target).get("mode") != "production":
        return []
    found = []
    for key, value in (resolved.document.get("workspace") or {}).items():
        if isinstance(value, str) and "//" in value.replace("://", ""):
            raw = str(((bundle.target(resolved.target).get("workspace") or {}).get(key))
                      or (bundle.document.get("workspace") or {}).get(key) or value)
            empty = [ref for ref in REFERENCE.findall(raw)
                     if ref.startswith("var.") and str(resolved.variables.get(ref[4:]) or "") == ""]
            used = ", ".join(empty) or "a value it uses"
            found.append((f"targets.{resolved.target}.workspace.{key}",
                          f"'{value}' has an empty segment: {used} is empty for target '{resolved.target}'"))
    return found


def _task_parameters(resolved: ResolvedBundle):
    """(path of the value, flag name, value) of every ``--flag value`` pair of every spark_python_task."""
    for job_key, job in resolved.jobs().items():
        for i, task in enumerate((job or {}).get("tasks") or []):
            params = ((task or {}).get("spark_python_task") or {}).get("parameters") or []
            path = f"resources.jobs.{job_key}.tasks[{i}].spark_python_task.parameters"
            for j, flag in enumerate(params[:-1]):
                if isinstance(flag, str) and flag.startswith("--") and isinstance(params[j + 1], str):
                    yield f"{path}[{j + 1}]", flag[2:], params[j + 1]


def _development_hint(resolved: ResolvedBundle, rtype: str, value: str) -> str:
    """`` (development mode deploys it as 'x')`` when ``value`` is the unrenamed name of a resource."""
    if resolved.bundle.target(resolved.target).get("mode") != naming.DEVELOPMENT:
        return ""
    field_name = naming.PREFIXED_NAMES.get(rtype, ("name",))[0]
    for definition in resolved.resources(rtype).values():
        if isinstance(definition, dict) and definition.get(field_name) == value:
            deployed = naming.deployed_name(rtype, value, naming.DEVELOPMENT, PLACEHOLDER_USER)
            if deployed != value:
                return f" (it is the name before development mode renames it: deployed as '{deployed}')"
    return ""


def parameter_targets(resolved: ResolvedBundle) -> list[tuple[str, str]]:
    """Parameters naming a model, experiment, app or job must refer to what this target deploys."""
    found = []
    app_names = {str(app.get("name")) for app in resolved.resources("apps").values() if isinstance(app, dict)}
    for path, flag, value in _task_parameters(resolved):
        if flag == APP_NAME_PARAMETER:
            # apps keep their name in development mode, so the variable the app's name uses is
            # its deployed name; ${resources.apps.<key>.name} would make the job depend on the
            # app, which depends on the job's id: a cycle (plan_cycles)
            whole = REFERENCE.fullmatch(value)
            if value not in app_names and not (whole and whole.group(1).startswith("resources.apps.")):
                declared = ", ".join(sorted(app_names)) or "none"
                found.append((path, f"--{flag} must be the name of an app this target deploys "
                                    f"(the variable its name uses; apps: {declared}), not '{value}'"))
            continue
        if flag in NAMED_PARAMETERS:
            rtype, field_name = NAMED_PARAMETERS[flag]
        elif flag == ENDPOINT_PARAMETER and resolved.resources("model_serving_endpoints"):
            rtype, field_name = "model_serving_endpoints", "name"
        elif JOB_ID_PARAMETER.fullmatch(flag):
            rtype, field_name = "jobs", "id"
            if value == OWN_JOB_ID:
                continue
        else:
            continue
        whole = REFERENCE.fullmatch(value)
        parts = whole.group(1).split(".") if whole else []
        if parts[:2] == ["resources", rtype] and len(parts) >= 4 and parts[3] == field_name:
            continue      # a reference to an undeclared key is reported where references are resolved
        declared = ", ".join(sorted(resolved.resources(rtype))) or "none"
        own = f" or {OWN_JOB_ID} for the job itself" if rtype == "jobs" else ""
        found.append((path, f"--{flag} must name the {rtype} resource this target deploys, "
                            f"${{resources.{rtype}.<key>.{field_name}}}{own} (declared: {declared}), "
                            f"not '{value}'{_development_hint(resolved, rtype, value)}"))
    return found


def deploy_problems(bundle: Bundle, resolved: ResolvedBundle) -> list[tuple[str, str]]:
    """Every deploy-time rule for one bundle target (the local target has none: nothing is deployed)."""
    if not resolved.deployed:
        return []
    return [*plan_cycles(resolved), *run_as_problems(bundle, resolved), *target_mode_problems(bundle, resolved),
            *app_lifecycle_problems(resolved), *per_user_names(bundle, resolved),
            *empty_path_segments(bundle, resolved), *parameter_targets(resolved)]
