"""The bundle rendered for one target the way ``databricks bundle deploy`` would see it.

``resolve_target`` substitutes variables and ``${bundle.*}`` / ``${workspace.*}`` but keeps
``${resources.*}`` for deploy time. ``render_target`` goes the rest of the way, offline:
it applies what development mode does to names (``naming``), pauses schedules that set no
pause status, then substitutes every ``${resources.<type>.<key>.<field>}`` from the rendered
resource (its name as deployed) or, for a field only a deploy creates (an id), with a
``<type.key.field>`` placeholder. What cannot be substituted is a problem: the same thing
a deploy would fail on. Tests compare what consumers are given with what is deployed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from healthcare_mlops.bundle import naming
from healthcare_mlops.bundle.definition import Bundle
from healthcare_mlops.bundle.interpolation import (COMPUTED_FIELDS, PLACEHOLDER_USER, Deferred, Unresolved,
                                                   _index, _split_reference, interpolate, references,
                                                   resolve_target)


@dataclass
class RenderedTarget:
    """One target's resources as deployed by ``user``: names final, references substituted."""

    target: str
    mode: str | None
    user: str
    document: dict
    problems: list = field(default_factory=list)     # (dotted path, message)

    def resources(self, rtype: str) -> dict:
        return (self.document.get("resources") or {}).get(rtype) or {}


def apply_development_names(resources: dict, mode: str | None, user: str, name_prefix: str | None = None) -> None:
    """Rename resources in place as the presets do (development: jobs ``[dev u] x``, models ``dev_u_x`` ...)."""
    for rtype, (name_field, _) in naming.PREFIXED_NAMES.items():
        for definition in (resources.get(rtype) or {}).values():
            if isinstance(definition, dict) and isinstance(definition.get(name_field), str):
                definition[name_field] = naming.deployed_name(rtype, definition[name_field], mode, user, name_prefix)
    if mode == naming.DEVELOPMENT:
        for job in (resources.get("jobs") or {}).values():
            schedule = job.get("schedule") if isinstance(job, dict) else None
            if isinstance(schedule, dict) and not schedule.get("pause_status"):
                schedule["pause_status"] = "PAUSED"


def _resource_lookup(resources: dict):
    """A lookup for ``interpolate`` that reads ``${resources...}`` from the rendered resources."""
    def lookup(reference: str):
        parts = _split_reference(reference)
        if parts[0] == "bundle":           # ${bundle.git.commit} ...: what the deploying checkout has
            return f"<{reference}>"
        if parts[0] != "resources":
            raise Deferred()
        rtype, key, field_name = (parts + [None, None, None])[1:4]
        definition = (resources.get(rtype) or {}).get(key)
        if not isinstance(definition, dict):
            raise Unresolved(f"${{{reference}}}: no {rtype} resource '{key}' is deployed by this target")
        if field_name in definition:
            return _index(definition, parts[3:], reference)
        if field_name in COMPUTED_FIELDS.get(rtype, {"id"}):
            return f"<{rtype}.{key}.{field_name}>"
        raise Unresolved(f"${{{reference}}}: '{field_name}' is neither set on {rtype}.{key} "
                         f"nor a field Databricks fills in")
    return lookup


def render_target(bundle: Bundle, target: str, user: str = PLACEHOLDER_USER) -> RenderedTarget:
    """``target`` as ``user`` would deploy it (see the module docstring)."""
    resolved = resolve_target(bundle, target, user)
    mode = bundle.target(target).get("mode")
    document = copy.deepcopy(resolved.document)
    resources = document.setdefault("resources", {})
    apply_development_names(resources, mode, user, (document.get("presets") or {}).get("name_prefix"))
    problems = list(resolved.problems)
    lookup = _resource_lookup(resources)
    for _ in range(3):          # a resource field that itself refers to a resource: one more pass
        document = interpolate(document, lookup, "", problems)
        if not list(references(document.get("resources") or {})):
            break
    for path, reference in references(document.get("resources") or {}, "resources"):
        problems.append((path, f"${{{reference}}} is left unresolved after rendering"))
    unique = list(dict.fromkeys(problems))
    return RenderedTarget(target=target, mode=mode, user=user, document=document, problems=unique)

