"""The typed models of ``databricks-bundles``: what a deploy's schema would refuse, located by key path.

``Job.from_dict`` (and the other resource classes) reject unknown fields and bad enum
values offline; ``locate_model_error`` turns the first refusal into the key path and a
message with a did-you-mean hint. Moved out of ``validation`` to keep each module to one concern.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import importlib
import re
import typing

# resource type -> (module, class) of its typed model in databricks-bundles
MODEL_CLASSES = {
    "jobs": ("databricks.bundles.jobs", "Job"),
    "apps": ("databricks.bundles.apps", "App"),
    "experiments": ("databricks.bundles.experiments", "MlflowExperiment"),
    "registered_models": ("databricks.bundles.registered_models", "RegisteredModel"),
    "clusters": ("databricks.bundles.clusters", "Cluster"),
    "pipelines": ("databricks.bundles.pipelines", "Pipeline"),
    "schemas": ("databricks.bundles.schemas", "Schema"),
    "volumes": ("databricks.bundles.volumes", "Volume"),
}


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def model_class(rtype: str):
    """The databricks-bundles class of a resource type, or None when unknown or not installed."""
    module_name, class_name = MODEL_CLASSES.get(rtype, (None, None))
    if module_name is None:
        return None
    try:
        return getattr(importlib.import_module(module_name), class_name, None)
    except ImportError:
        return None


def typed_models_available() -> bool:
    return model_class("jobs") is not None


def _unwrap(tp):
    """The dataclass, enum, ("list", inner) or ("dict", inner) inside a field's type hint."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "types.UnionType":
        for arg in typing.get_args(tp):
            inner = _unwrap(arg)
            if inner is not None:
                return inner
        return None
    if origin is list:
        inner = _unwrap(typing.get_args(tp)[0])
        return ("list", inner) if inner is not None else None
    if origin is dict:
        inner = _unwrap(typing.get_args(tp)[1])
        return ("dict", inner) if inner is not None else None
    if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or issubclass(tp, enum.Enum)):
        if tp.__name__ == "Variable":
            return None
        return tp
    return None


def _field_types(cls) -> dict:
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError, AttributeError):  # hints that cannot be evaluated: no locating below it
        return {}
    return {f.name: _unwrap(hints.get(f.name)) for f in dataclasses.fields(cls)}


def _locate_in(tp, value, path: str):
    if tp is None:
        return None
    if isinstance(tp, tuple):
        kind, inner = tp
        if kind == "list" and isinstance(value, list):
            for i, item in enumerate(value):
                found = _locate_in(inner, item, _join(path, i))
                if found:
                    return found
        if kind == "dict" and isinstance(value, dict):
            for key, item in value.items():
                found = _locate_in(inner, item, _join(path, key))
                if found:
                    return found
        return None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, str) and "${" not in value and value not in {m.value for m in tp}:
            allowed = ", ".join(str(m.value) for m in tp)
            return path, f"'{value}' is not a valid {tp.__name__} (allowed: {allowed})"
        return None
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return locate_model_error(tp, value, path)
    return None


def locate_model_error(cls, data, path: str):
    """(key path, message) of the first thing ``cls.from_dict(data)`` rejects, or None."""
    try:
        cls.from_dict(data)
        return None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # what from_dict raises on bad input
        message = str(exc)
    if isinstance(data, dict):
        types = _field_types(cls)
        for key, value in data.items():
            found = _locate_in(types.get(key), value, _join(path, key))
            if found:
                return found
        unknown = re.search(r"Unexpected field '([^']+)'", message)
        if unknown:
            name = unknown.group(1)
            close = difflib.get_close_matches(name, list(types), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return _join(path, name), f"unknown field '{name}' for {cls.__name__}{hint}"
    return path, message
