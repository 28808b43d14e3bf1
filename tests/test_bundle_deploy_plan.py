"""The deploy plan's dependency graph and the CLI's generic deploy rules, on small bundles.

Each fixture under tests/fixtures/bundles/deploy_plan is written here from a case of the
Databricks CLI's acceptance suite (``acceptance/bundle/...`` in the public databricks/cli
repository) or from the CLI's planning code where no case spells it out; ``CASES`` names which.
A fixture passes or fails exactly as ``databricks bundle plan`` / ``deploy`` does with it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bundle_editing import one_matching, problems, replace_text
from healthcare_mlops.bundle.definition import load_bundle
from healthcare_mlops.emulator.deploy_plan import find_plan_cycle, node_of, plan_nodes_and_edges
from healthcare_mlops.emulator.deploy_rules import deploy_problems
from healthcare_mlops.bundle.interpolation import resolve_target

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "bundles"

# fixture -> (what it mirrors, a fragment of the one problem expected, or None: it deploys)
CASES = {
    "mutual_job_ids": ("resource_deps/loop_jobs",
                       "cycle detected: jobs.ingest -> jobs.report -> jobs.ingest (resources.jobs.ingest refers to "
                       "resources.jobs.report via ${resources.jobs.report.id} which refers to resources.jobs.ingest "
                       "via ${resources.jobs.ingest.id})"),
    "job_names_itself": ("resource_deps/loop_self",
                         "resources.jobs.nightly refers to itself via ${resources.jobs.nightly.id}"),
    "chain_of_ids": ("resource_deps/id_chain", None),
    "acl_entries_refer_across": ("resource_deps/permission_ref and grant_ref", None),
    "app_uses_job_acl_names_app": ("apps/resource-refs with the job's permissions naming the app "
                                   "(bundle/direct/bundle_plan.go: permissions are a node of their own)", None),
    "app_and_job_name_each_other": ("apps/resource-refs with the job naming the app (bundle_plan.go's edges)",
                                    "cycle detected: apps.board -> jobs.refresh -> apps.board"),
    "dev_unpaused_preset": ("presets/preset_vs_dev_mode",
                            "cannot set trigger pause status to UNPAUSED by default"),
    "dev_prefix_without_user": ("validate/presets_name_prefix_dev (static prefix)",
                                "prefix should contain the current username"),
    "dev_prefix_with_user": ("validate/presets_name_prefix_dev (prefix with the short name)", None),
    "dev_shared_root_path": ("resourcemutator/validate_target_mode.go (development paths)",
                             "root_path must start with '~/' or contain the current username"),
    "prod_without_root_path": ("resourcemutator/validate_target_mode.go (production, a person deploying)",
                               "must set 'workspace.root_path'"),
    "run_as_other_with_app": ("resourcemutator/run_as.go (apps)", "run_as cannot be combined with apps"),
    "run_as_deployer_with_app": ("resourcemutator/run_as.go (identity = the deployer)", None),
    "app_started_with_terraform": ("resources/apps/lifecycle-started-terraform-error",
                                   "lifecycle.started is only supported in direct deployment mode"),
    "app_started_direct": ("resources/apps/lifecycle-started", None),
    "app_lifecycle_omitted": ("resources/apps/lifecycle-started-omitted", None),
}


def _deploy_problems(root: Path) -> list[str]:
    bundle = load_bundle(root)
    target = bundle.default_target()
    return [message for _, message in deploy_problems(bundle, resolve_target(bundle, target))]


def test_every_fixture_has_a_case():
    assert sorted(p.name for p in (FIXTURES / "deploy_plan").iterdir()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_passes_or_fails_as_the_cli_does(name):
    mirrors, expected = CASES[name]
    found = _deploy_problems(FIXTURES / "deploy_plan" / name)
    if expected is None:
        assert found == [], f"{name} (mirrors {mirrors}) deploys with the CLI"
    else:
        assert len(found) == 1 and expected in found[0], f"{name} (mirrors {mirrors}): {found}"


def test_references_name_the_node_the_cli_plans():
    assert node_of("resources.jobs.a.id") == "resources.jobs.a"
    assert node_of("resources.jobs.a.permissions[0].level") == "resources.jobs.a.permissions"
    assert node_of("resources.schemas.s.grants[1].principal") == "resources.schemas.s.grants"
    assert node_of("resources.apps.x.service_principal_client_id") == "resources.apps.x"
    assert node_of("var.app_name") is None


def test_an_acl_depends_on_its_resource():
    nodes, edges = plan_nodes_and_edges(load_bundle(FIXTURES / "deploy_plan" / "acl_entries_refer_across").document)
    assert "resources.jobs.left.permissions" in nodes
    assert any(e.source == "resources.jobs.left.permissions" and e.target == "resources.jobs.left" for e in edges)
    assert find_plan_cycle(nodes, edges) is None


def _bundle_copy(tmp_path: Path, resources_from: Path | None = None) -> Path:
    root = tmp_path / "bundle"
    root.mkdir()
    shutil.copy(REPO / "app.yaml", root / "app.yaml")
    shutil.copytree(REPO / "jobs", root / "jobs")
    source = resources_from or REPO
    shutil.copy(source / "databricks.yml", root / "databricks.yml")
    shutil.copytree(source / "resources", root / "resources")
    return root


def test_the_bundle_before_issue_23_is_refused_naming_its_cycle(tmp_path):
    root = _bundle_copy(tmp_path, FIXTURES / "before_deploy_plan")
    message = one_matching(problems(root), "cycle detected: apps.console -> jobs.ml_training_pipeline -> apps.console")
    assert "via ${resources.apps.console.name}" in message
    assert message.startswith("resources/jobs.yml: resources.jobs.ml_training_pipeline.tasks[2]")


def test_the_bundle_has_no_cycle(tmp_path):
    assert problems(_bundle_copy(tmp_path)) == []


def test_passing_the_app_by_reference_again_is_a_cycle(tmp_path):
    root = _bundle_copy(tmp_path)
    replace_text(root / "resources" / "jobs.yml", "- ${var.app_name}", "- ${resources.apps.console.name}")
    one_matching(problems(root), "resources.jobs.model_governance.tasks[0]",
                 "cycle detected: apps.console -> jobs.model_governance -> apps.console")


def test_the_app_name_parameter_must_be_the_app_this_target_deploys(tmp_path):
    root = _bundle_copy(tmp_path)
    replace_text(root / "resources" / "jobs.yml", "- ${var.app_name}", "- hc-mlops-console")
    one_matching(problems(root), "--app_name must be the name of an app this target deploys", "not 'hc-mlops-console'")


@pytest.mark.parametrize("old,new,path", [
    ("      serving_endpoint_name: insurance-risk-dev-${workspace.current_user.domain_friendly_name}\n",
     "      serving_endpoint_name: insurance-risk-dev\n", "targets.dev.variables.serving_endpoint_name"),
    ("      app_name: hc-dev-${workspace.current_user.domain_friendly_name}\n",
     "      app_name: hc-mlops-console-dev\n", "resources.apps.console.name"),
])
def test_a_dev_name_shared_by_every_developer_is_refused(tmp_path, old, new, path):
    """A project rule beyond the CLI's (which deploys both developers onto one app or endpoint)."""
    root = _bundle_copy(tmp_path)
    replace_text(root / "databricks.yml", old, new)
    message = one_matching(problems(root), f"{path}: ", "is the same for every developer")
    assert message.endswith("(target dev)")
