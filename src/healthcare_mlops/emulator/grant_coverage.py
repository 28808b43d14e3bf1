"""Do the bundle's grants plus the documented manual grants give every principal what its paths need?

``principals.PATHS`` says which right each call needs; this module reads what is granted:

- from the bundle (one target, resolved): the app's ``resources`` (its service principal gets
  each permission), and ``permissions`` / ``grants`` entries naming the app's service principal;
- from docs/deployment.md: every ``GRANT <privileges> ON <CATALOG|SCHEMA|TABLE|VOLUME> <name>
  TO `<principal>`;`` whose principal is one of ``DOC_PRINCIPALS``.

A higher level covers a lower one (``CAN_MANAGE_RUN`` covers ``CAN_VIEW``), and a privilege on
the schema covers it on the schema's tables, as Unity Catalog inherits it.
"""

from __future__ import annotations

import re

from healthcare_mlops.bundle.principals import APP, DEVELOPER, GRANTED, OWNER, Right, needed, paths_needing

APP_PRINCIPAL_REFERENCE = "${resources.apps.console.service_principal_client_id}"
DOC_PRINCIPALS = {"<app-sp-application-id>": APP, "<sp-application-id>": OWNER, "<developer>": DEVELOPER}
LEVELS = {   # ordered lowest first: a level covers every level before it
    "job": ("CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER"),
    "experiment": ("CAN_READ", "CAN_EDIT", "CAN_MANAGE"),
    "warehouse": ("CAN_USE", "CAN_MONITOR", "CAN_MANAGE", "IS_OWNER"),
}
APP_RESOURCE_KINDS = {"job": "job", "experiment": "experiment", "sql_warehouse": "warehouse"}
GRANT = re.compile(r"GRANT\s+(?P<privileges>[A-Z ,]+?)\s+ON\s+(?P<kind>CATALOG|SCHEMA|TABLE|VOLUME)\s+"
                   r"(?P<name>[\w.<>-]+)\s+TO\s+`(?P<principal>[^`]+)`", re.IGNORECASE)


def _key_of(reference: str) -> str:
    """``${resources.jobs.model_governance.id}`` -> ``model_governance``."""
    parts = reference.strip("${}").split(".")
    return parts[2] if len(parts) > 2 else reference


def bundle_grants(document: dict) -> set[tuple[str, Right]]:
    """(principal, right) the bundle grants one of ``principals.PRINCIPALS`` (the app's principal)."""
    granted = set()
    for app in ((document.get("resources") or {}).get("apps") or {}).values():
        for resource in (app or {}).get("resources") or []:
            for kind, spec in resource.items():
                if kind in APP_RESOURCE_KINDS and isinstance(spec, dict):
                    target = spec.get("id") or spec.get("experiment_id") or ""
                    securable = "console" if kind == "sql_warehouse" else _key_of(str(target))
                    granted.add((APP, Right(APP_RESOURCE_KINDS[kind], securable, str(spec.get("permission")))))
    for rtype, group in (document.get("resources") or {}).items():
        kind = {"jobs": "job", "experiments": "experiment", "registered_models": "registered_model"}.get(rtype)
        for key, definition in (group or {}).items() if kind else []:
            for entry in (definition or {}).get("permissions") or []:
                if entry.get("service_principal_name") == APP_PRINCIPAL_REFERENCE:
                    granted.add((APP, Right(kind, key, str(entry.get("level")))))
            for entry in (definition or {}).get("grants") or []:
                if entry.get("principal") == APP_PRINCIPAL_REFERENCE:
                    granted.update((APP, Right(kind, key, str(p))) for p in entry.get("privileges") or [])
    return granted


def documented_grants(text: str) -> set[tuple[str, Right]]:
    """(principal, right) of every ``GRANT ... TO `<placeholder>``` in ``text`` with a known placeholder."""
    granted = set()
    for match in GRANT.finditer(text):
        principal = DOC_PRINCIPALS.get(match["principal"])
        if principal is None:
            continue
        kind = match["kind"].lower()
        securable = kind if kind in ("catalog", "schema") else match["name"].split(".")[-1]
        for privilege in match["privileges"].split(","):
            granted.add((principal, Right(kind, securable, " ".join(privilege.split()).upper())))
    return granted


def covers(granted: set[tuple[str, Right]], principal: str, right: Right) -> bool:
    """Whether ``granted`` gives ``principal`` the ``right`` (directly, by a higher level, or by the schema)."""
    mine = {r for p, r in granted if p == principal}
    if right in mine:
        return True
    order = LEVELS.get(right.kind)
    if order and right.permission in order:
        floor = order.index(right.permission)
        if any(r.kind == right.kind and r.securable == right.securable and r.permission in order
               and order.index(r.permission) >= floor for r in mine):
            return True
    return right.kind == "table" and Right("schema", "schema", right.permission) in mine


def uncovered(granted: set[tuple[str, Right]], principals: tuple = (APP, OWNER, DEVELOPER)) -> list[str]:
    """One line per granted-kind right some path needs and nothing grants, naming the paths."""
    missing = []
    for principal in principals:
        for right in sorted(needed(principal, GRANTED), key=lambda r: (r.kind, r.securable, r.permission)):
            if not covers(granted, principal, right):
                missing.append(f"{principal} lacks {right.permission} on {right.kind} {right.securable}, "
                               f"needed by: {', '.join(paths_needing(principal, right))}")
    return missing
