"""The principals table against what is granted: the bundle's grants plus docs/deployment.md's manual ones.

Every right a path needs (``bundle/principals.py``) that must be granted is granted, and
removing any single grant, from the bundle or from the docs, leaves a path uncovered and
the check names it. docs/deployment.md shows the table exactly as the code renders it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from healthcare_mlops.bundle import principals
from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.emulator.grant_coverage import (APP_PRINCIPAL_REFERENCE, bundle_grants, documented_grants,
                                                     uncovered)
from healthcare_mlops.bundle.interpolation import resolve_target

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "docs" / "deployment.md").read_text()


@pytest.fixture(scope="module")
def staging():
    return resolve_target(load_bundle(REPO), "staging").document


def _granted(document: dict, docs: str) -> set:
    return bundle_grants(document) | documented_grants(docs)


def test_the_bundle_and_the_documented_grants_cover_every_path(staging):
    assert uncovered(_granted(staging, DOCS)) == []


def test_the_docs_show_the_table_the_code_holds():
    assert principals.render_markdown() in DOCS


def _bundle_entries(document: dict):
    """(label, remove) for every grant the bundle gives the app's principal."""
    for i, resource in enumerate(document["resources"]["apps"]["console"]["resources"]):
        def remove(doc, i=i):
            del doc["resources"]["apps"]["console"]["resources"][i]
        yield f"app resource {resource['name']}", remove
    for rtype, group in document["resources"].items():
        for key, definition in group.items():
            for acl in ("permissions", "grants"):
                for i, entry in enumerate(definition.get(acl) or []):
                    if APP_PRINCIPAL_REFERENCE in entry.values():
                        def remove(doc, rtype=rtype, key=key, acl=acl, i=i):
                            del doc["resources"][rtype][key][acl][i]
                        yield f"{rtype}.{key}.{acl}[{i}]", remove


BUNDLE_ENTRIES = list(_bundle_entries(resolve_target(load_bundle(REPO), "staging").document))
DOC_GRANTS = [m.group(0) for m in
              re.finditer(r"GRANT [^;]+ TO `<(?:app-sp-application-id|sp-application-id|developer)>`;", DOCS)]


def test_there_are_grants_of_each_kind_to_remove():
    assert len(BUNDLE_ENTRIES) >= 10 and len(DOC_GRANTS) >= 10


@pytest.mark.parametrize("label,remove", BUNDLE_ENTRIES, ids=[label for label, _ in BUNDLE_ENTRIES])
def test_removing_a_bundle_grant_leaves_a_path_uncovered(staging, label, remove):
    document = copy.deepcopy(staging)
    remove(document)
    missing = uncovered(_granted(document, DOCS))
    assert missing, f"removing {label} left every path covered: the grant is not needed, or the table misses its path"
    assert all("needed by: " in line for line in missing)


@pytest.mark.parametrize("statement", DOC_GRANTS)
def test_removing_a_documented_grant_leaves_a_path_uncovered(staging, statement):
    missing = uncovered(_granted(staging, DOCS.replace(statement, "", 1)))
    assert missing, f"removing '{statement}' left every path covered"
    assert all("needed by: " in line for line in missing)


def test_a_missing_grant_names_the_principal_the_right_and_the_paths(staging):
    docs = DOCS.replace("GRANT MODIFY ON TABLE healthcare_prod.insurance_ml.ml_model_alerts "
                        "TO `<app-sp-application-id>`;", "")
    assert uncovered(_granted(staging, docs)) == [
        "app lacks MODIFY on table ml_model_alerts, needed by: console: acknowledge an alert"]


def test_the_console_needs_only_reads_audit_writes_job_starts_and_queries():
    """After approvals moved to model_governance, the app's principal writes nothing but two tables."""
    writes = {r for r in principals.needed(principals.APP) if r.permission in ("MODIFY", "APPLY_TAG", "MANAGE",
                                                                                "CAN_EDIT", "CAN_MANAGE")}
    assert {(r.kind, r.securable) for r in writes} == {("table", t) for t in principals.CONSOLE_WRITES}
    assert principals.needed(principals.APP, principals.RUNTIME) == {
        principals.Right("endpoint", "serving", "CAN_QUERY")}
