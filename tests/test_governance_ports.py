"""The governance core runs on what it is handed: an in-memory table catalog and registry.

No MLflow, no Delta, no settings: the audit log, the champion as the audit records it,
a killed promotion's repair, decisions, and the first-champion wait, each on small fakes of
the two adapters (``TableCatalog`` and ``runtime/model_registry.ModelRegistry``) that keep
what is written and answer what is asked, so a test sees every write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import pytest

from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import audit, decisions
from healthcare_mlops.governance.champion import INTENT_TAG, audited_champion, move_in_progress, resolve_champion
from healthcare_mlops.governance.checks import Check
from healthcare_mlops.governance.first_champion import ChampionMissing, waiting_for_first_champion
from healthcare_mlops.governance.service import STATUS_TAG, Governance
from healthcare_mlops.identity import APPROVER, OPERATOR, SYSTEM, Identity, RoleMembers, job_identity, role_for
from healthcare_mlops.modeling.artifacts import CHAMPION
from healthcare_mlops.tables import MODEL_GOVERNANCE_LOG

MODEL = "insurance_model"
OWNER = Identity("owner@example.com", APPROVER)


class MemoryCatalog:
    """The part of ``TableCatalog`` the audit log uses, on lists of rows."""

    def __init__(self):
        self.rows: dict[str, list[dict]] = {}

    def exists(self, name: str) -> bool:
        return name in self.rows

    def append_rows(self, name: str, rows: list[dict], schema) -> None:
        assert set(rows[0]) == set(schema.names), "an audit row has exactly the table's columns"
        self.rows.setdefault(name, []).extend(rows)

    def read_pandas(self, name: str, where=(), columns=None) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows[name])
        for column, op, value in where:
            assert op == "="
            frame = frame[frame[column] == value]
        return frame if columns is None else frame[columns]


@dataclass
class Version:
    version: str
    run_id: str
    tags: dict = field(default_factory=dict)


@dataclass
class MemoryRegistry:
    """The registry adapter's calls that governance makes, on dicts."""

    model_name: str = MODEL
    registered: dict = field(default_factory=dict)        # version -> Version
    aliases: dict = field(default_factory=dict)
    tags: dict | None = None                               # None: the model is not registered

    def register(self, version: str) -> None:
        self.registered[version] = Version(version, f"run{version}")
        self.tags = self.tags if self.tags is not None else {}

    def version(self, version):
        return self.registered.get(str(version))

    def aliased(self, alias: str):
        return self.registered.get(self.aliases.get(alias))

    def alias(self, alias: str):
        return self.aliases.get(alias)

    def set_alias(self, alias: str, version: str) -> None:
        self.aliases[alias] = str(version)

    def delete_alias(self, alias: str) -> None:
        self.aliases.pop(alias, None)

    def versions(self) -> list:
        return list(self.registered.values())

    def version_tags(self, version) -> dict:
        return dict(self.registered[str(version)].tags)

    def set_version_tag(self, version, key: str, value: str) -> None:
        self.registered[str(version)].tags[key] = value

    def model_tags(self):
        return None if self.tags is None else dict(self.tags)

    def set_model_tag(self, key: str, value: str) -> None:
        self.tags[key] = value

    def delete_model_tag(self, key: str) -> None:
        self.tags.pop(key, None)


@pytest.fixture()
def parts():
    catalog, registry = MemoryCatalog(), MemoryRegistry()
    return catalog, registry, audit.AuditLog(catalog, MODEL, "manual")


def _promoted(log: audit.AuditLog, version: str) -> None:
    log.record(log.event(version, audit.PROMOTED, job_identity("local")))


def test_the_audit_log_records_who_in_which_mode_and_reads_one_version_oldest_first(parts):
    catalog, _, log = parts
    assert log.history().empty and not catalog.exists(MODEL_GOVERNANCE_LOG)    # reading writes nothing
    log.record_job_run(OWNER, "model_governance", "7", {"model_version": "2"})
    log.record(log.event("2", audit.VALIDATED, job_identity("prod"), checks=[{"name": "r2"}]))
    assert list(log.history()["action"]) == [audit.RAN_JOB, audit.VALIDATED]
    [row] = log.history("2").to_dict("records")
    assert (row["actor"], row["role"], row["approval_mode"], row["model_name"]) == ("job:prod", SYSTEM, "manual", MODEL)
    assert audit.decoded_checks(pd.Series(row)) == [{"name": "r2"}]
    assert log.history("")["comment"].item() == 'model_governance run 7 with {"model_version": "2"}'


def test_the_champion_is_the_audited_one_and_a_stray_alias_is_named_not_followed(parts, capsys):
    _, registry, log = parts
    registry.register("1"), registry.register("2")
    with pytest.raises(UserError, match="has no champion"):
        resolve_champion(log, registry)
    _promoted(log, "1")
    registry.set_alias(CHAMPION, "2")                      # moved outside governance
    assert audited_champion(log) == "1"
    assert resolve_champion(log, registry).version == "1"
    assert "the alias was set outside governance" in capsys.readouterr().out


def test_a_killed_promotion_is_undone_and_the_repair_is_audited(parts):
    catalog, registry, log = parts
    registry.register("1"), registry.register("2")
    _promoted(log, "1")
    registry.set_alias(CHAMPION, "2")                      # the alias moved, the audit row was never written
    registry.set_version_tag("2", STATUS_TAG, CHAMPION)
    registry.set_model_tag(INTENT_TAG, json.dumps({"event_id": "e1", "version": "2", "previous_champion": "1",
                                                   "previous_status": "validated"}))
    governance = Governance(registry, log, catalog, Identity("op@example.com", OPERATOR), thresholds=None)
    assert governance.interrupted_move()["version"] == "2"
    assert governance.recover() == "rolled back"
    assert registry.aliases[CHAMPION] == "1" and registry.version_tags("2")[STATUS_TAG] == "validated"
    assert move_in_progress(registry) is None
    repaired = log.history("2").iloc[-1]
    assert (repaired["action"], repaired["actor"]) == (audit.REPAIRED, "op@example.com")
    assert governance.recover() is None                   # nothing left to repair, nothing written
    assert len(log.history("2")) == 1


def test_a_decision_needs_a_comment_a_validation_and_for_failing_checks_a_reason(parts):
    _, _, log = parts
    with pytest.raises(UserError, match="needs a --comment"):
        decisions.record_decision(log, OWNER, "2", decisions.APPROVE, "  ")
    with pytest.raises(UserError, match="has no recorded validation"):
        decisions.record_decision(log, OWNER, "2", decisions.APPROVE, "ok")
    failing = [Check("r2", 0.1, ">= 0.7", "fail", True)]
    with pytest.raises(UserError, match="needs --override-reason"):
        decisions.record_decision(log, OWNER, "2", decisions.APPROVE, "ok", checks=failing)
    with pytest.raises(UserError, match="needs the approver role"):
        decisions.record_decision(log, Identity("op@example.com", OPERATOR), "2", decisions.APPROVE, "ok",
                                  checks=failing)
    assert log.history().empty                             # every refusal wrote nothing
    event = decisions.record_decision(log, OWNER, "2", decisions.APPROVE, "ok", "pilot", checks=failing)
    assert (event["action"], event["override_reason"], event["approval_mode"]) == (audit.OVERRIDDEN, "pilot", "manual")
    assert decisions.approved_not_promoted(log.history("2"))


def test_before_the_first_champion_jobs_wait_and_a_lost_champion_fails(parts):
    _, registry, log = parts
    assert "waiting for the first champion" in waiting_for_first_champion(log, registry, "batch_inference")
    registry.register("1")
    registry.set_version_tag("1", STATUS_TAG, "retired")   # it was champion once
    with pytest.raises(ChampionMissing, match=r"version\(s\) 1 were champion"):
        waiting_for_first_champion(log, registry, "batch_inference")
    _promoted(log, "1")
    with pytest.raises(ChampionMissing, match="removed outside governance"):
        waiting_for_first_champion(log, registry, "batch_inference")
    registry.set_alias(CHAMPION, "1")
    assert waiting_for_first_champion(log, registry, "batch_inference") is None


def test_roles_come_from_the_typed_members_highest_first():
    members = RoleMembers.from_variables({"approvers_group": "Approvers", "operators_group": "ops, a@x.com",
                                          "analysts_group": ""})
    assert role_for("A@X.com", [], members) == OPERATOR
    assert role_for("b@x.com", ["ops", "APPROVERS"], members) == APPROVER
    assert role_for("b@x.com", ["analysts"], members) == "viewer"
    assert job_identity("prod") == Identity("job:prod", SYSTEM)
