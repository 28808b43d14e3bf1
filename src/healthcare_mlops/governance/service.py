"""Champion/challenger governance on the MLflow registry: validate, approve, reject, promote, roll back.

Promotion is all-or-nothing. Before touching anything it writes an intent (a tag on the
registered model naming the version, the champion it replaces and the audit event id);
then version tags, then the ``champion`` alias, then the audit row, then it clears the
intent. Every governance call first looks for a left-over intent: when the audit row
exists the promotion finished and the intent is cleared, otherwise the alias and tags
are put back as they were. A killed promotion is therefore undone on the next run.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from healthcare_mlops.errors import UserError
from healthcare_mlops.failpoints import failpoint
from healthcare_mlops.governance import audit, decisions
from healthcare_mlops.governance.champion import INTENT_TAG, audited_champion, misscored_days, move_in_progress
from healthcare_mlops.governance.checks import Check, hard_failures, referrals, run_checks
from healthcare_mlops.governance.evaluation import gather_evidence
from healthcare_mlops.governance.model_card import render_model_card
from healthcare_mlops.governance.thresholds import GovernanceThresholds
from healthcare_mlops.identity import Identity
from healthcare_mlops.modeling.artifacts import (CHALLENGER, CHAMPION, EVALUATION_ARTIFACT_DIR, GROUP_METRICS_FILE,
                                                 PROMOTION_PENDING)

STATUS_TAG = "governance_status"
MODEL_CARD_FILE = "model_card.md"
DECISIONS = (audit.APPROVED, audit.OVERRIDDEN, audit.REJECTED, audit.PROMOTED)
REFERRED_BLOCKER = "referred to an approver (the champion misses the same floor on the same rows)"


@dataclass
class Validation:
    version: str
    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        return hard_failures(self.checks)

    @property
    def referrals(self) -> list[Check]:
        """Floors the champion misses too on the same rows: the decision goes to an approver."""
        return referrals(self.checks)

    @property
    def passed(self) -> bool:
        return not self.failures and not self.referrals


class Governance:
    """Governance actions for the target's registered model, on behalf of ``identity``.

    ``registry`` is the model's registry adapter (runtime/model_registry.py), ``log`` its audit
    log, ``catalog`` the target's ``TableCatalog``; the composition root builds all three
    (``composition.Runtime.governance``). The approval mode is the audit log's."""

    def __init__(self, registry: Any, log: audit.AuditLog, catalog: Any, identity: Identity,
                 thresholds: GovernanceThresholds, champion_endpoint: Callable[[str], object] | None = None,
                 role_check: Callable[[str, str], bool] | None = None):
        self.registry, self.log, self.catalog = registry, log, catalog
        self.identity = identity
        # Points the serving endpoint at a new champion (Databricks; composition.champion_endpoint).
        # None locally, where `serve` reads the alias. The console never acts here: it records
        # decisions (governance/decisions.py) and a model_governance run applies them.
        self.champion_endpoint = champion_endpoint
        # Whether a recorded decision's actor still has a role that may take it, asked of the
        # workspace's directory (composition.role_check); None: the recorded role is trusted.
        self.role_check = role_check
        self.model_name = registry.model_name
        self.thresholds = thresholds
        self.approval_mode = log.approval_mode

    # -- registry state -------------------------------------------------------------
    def alias(self, name: str) -> str | None:
        return self.registry.alias(name)

    def _require_version(self, version) -> str:
        found = self.registry.version(version)
        if found is None:
            raise UserError(f"{self.model_name} has no version {version}")
        return str(found.version)

    def _event(self, version: str, action: str, checks=None, comment=None, override_reason=None,
               passed=None, event_id=None) -> dict:
        return self.log.event(version, action, self.identity, checks=checks, comment=comment,
                              override_reason=override_reason, hard_checks_passed=passed, event_id=event_id)

    # -- recovery -------------------------------------------------------------------
    def interrupted_move(self) -> dict | None:
        """The intent of a promotion or rollback a killed process left half-done, or None (only reads)."""
        return move_in_progress(self.registry)

    def recover(self) -> str | None:
        """Finish or undo a promotion that a killed process left half-done; the audit names who repaired it.

        An explicit step of the commands and jobs that change the registry (never of a constructor
        or a read), so ``status`` cannot write. None when nothing was interrupted."""
        intent = self.interrupted_move()
        if intent is None:
            return None
        self.identity.require("repair")
        history = self.log.history(intent["version"])
        if not history.empty and intent["event_id"] in set(history["event_id"]):
            outcome = "completed"
        else:
            previous = intent.get("previous_champion")
            if previous:
                self.registry.set_alias(CHAMPION, previous)
                self.registry.set_version_tag(previous, STATUS_TAG, CHAMPION)
            else:
                self.registry.delete_alias(CHAMPION)
            self.registry.set_version_tag(intent["version"], STATUS_TAG, intent.get("previous_status") or "validated")
            outcome = "rolled back"
        message = f"repaired an interrupted promotion of version {intent['version']}: {outcome}"
        wrong = misscored_days(self.log)
        if wrong:       # scored from the half-moved alias (by a reader that did not resolve the champion)
            message += "; scored by a version that was not the audited champion, rescore: " + ", ".join(
                f"{d['scoring_date']} (version {d['model_version']}, champion {d['champion']})" for d in wrong)
        # recorded before the intent is cleared: a repair killed here is repeated, never unrecorded
        self.log.record(self._event(intent["version"], audit.REPAIRED, comment=message))
        self.registry.delete_model_tag(INTENT_TAG)
        print(message)
        return outcome

    # -- validation -----------------------------------------------------------------
    def latest_validation(self, version: str) -> Validation | None:
        history = self.log.history(version)
        validated = history[history["action"] == audit.VALIDATED]
        if validated.empty:
            return None
        checks = [Check(**c) for c in audit.decoded_checks(validated.iloc[-1])]
        return Validation(version=str(version), checks=checks)

    def validate(self, version=None) -> Validation:
        """Run every check on ``version`` (default: the challenger) and record the result.

        One audit row per validation, except a repeat by the same actor with the same result
        (a rerun of the scheduled job changes nothing)."""
        self.identity.require("validate")
        version = self._require_version(version or self._challenger_or_fail())
        champion = self.alias(CHAMPION)
        evidence = gather_evidence(self.catalog, self.registry, version, champion)
        checks = run_checks(evidence, self.thresholds)
        result = Validation(version=version, checks=checks)
        if not self._same_validation(version, checks):
            self.log.record(self._event(version, audit.VALIDATED, checks, passed=result.passed))
        for check in checks:
            self.registry.set_version_tag(version, f"check.{check.name}",
                                          json.dumps({"value": check.value, "threshold": check.threshold,
                                                      "verdict": check.verdict, "hard": check.hard}))
        if self.registry.version_tags(version).get(STATUS_TAG) != CHAMPION:
            self.registry.set_version_tag(version, STATUS_TAG, "validated" if result.passed else "failed_checks")
        groups = evidence.oof.group_metrics() if evidence.oof is not None else []
        self.attach_model_card(version, checks, groups)
        return result

    def _same_validation(self, version: str, checks: list[Check]) -> bool:
        """Whether the latest validation of ``version`` was this actor's, with these results."""
        history = self.log.history(version)
        validated = history[history["action"] == audit.VALIDATED]
        if validated.empty:
            return False
        last = validated.iloc[-1]
        return last["actor"] == self.identity.user and \
            audit.decoded_checks(last) == [c.as_dict() for c in checks]

    def _challenger_or_fail(self) -> str:
        challenger = self.alias(CHALLENGER)
        if challenger is None:
            raise UserError(f"{self.model_name} has no challenger: run the model_training job first")
        return challenger

    def governed_version(self, model_version=None) -> str:
        """The version a model_governance run governs: ``model_version`` when given (it must
        exist), else the challenger."""
        text = str(model_version or "").strip()
        if not text:
            return self._require_version(self._challenger_or_fail())
        if not text.isdigit():
            raise UserError(f"model_version must be a version number, not '{text}'")
        return self._require_version(text)

    def _validation_for_decision(self, version: str) -> Validation:
        return self.latest_validation(version) or self.validate(version)

    def refer(self, version: str) -> str | None:
        """Record, once per validation, that ``version``'s decision went to an approver, and why.

        Returns the reason (None when nothing is referred)."""
        validation = self._validation_for_decision(version)
        if not validation.referrals:
            return None
        reason = "; ".join(f"{c.name} {c.threshold}: {c.detail}" for c in validation.referrals)
        history = self.log.history(version)
        last = history.iloc[-1] if not history.empty else None
        if last is None or last["action"] != audit.REFERRED or last["comment"] != reason:
            self.log.record(self._event(version, audit.REFERRED, validation.checks, reason,
                                                    passed=False))
        self.registry.set_version_tag(version, STATUS_TAG, "pending_approval")
        return reason

    # -- decisions ------------------------------------------------------------------
    def approve(self, version, comment: str, override_reason: str | None = None) -> str:
        """Record an approval (an override when hard checks fail), apply it and promote the version.

        This acts with the caller's own registry rights (the CLI of a model owner, the
        model_governance job). The console only records the decision (``decisions``) and starts
        model_governance, which applies it (``apply_decision``) as the model's owner.
        """
        self.identity.require("approve")
        decisions.require_comment("approve", comment)
        version = self._require_version(version)
        validation = self._validation_for_decision(version)
        decisions.record_decision(self.log, self.identity, version, decisions.APPROVE, comment,
                                  override_reason, validation.checks)
        self.apply_decision(version)
        promoted = self.promote(version, comment=comment)
        self.refresh_model_card(version)
        return promoted

    def reject(self, version, comment: str) -> None:
        self.identity.require("reject")
        decisions.require_comment("reject", comment)
        version = self._require_version(version)
        validation = self._validation_for_decision(version)
        decisions.record_decision(self.log, self.identity, version, decisions.REJECT, comment,
                                  checks=validation.checks)
        self.apply_decision(version)
        self.refresh_model_card(version)

    def latest_decision(self, version: str):
        """The version's latest trusted decision in the audit log (a row), or None.

        With a ``role_check``, a row also counts only when its actor's current role may take it."""
        rows = decisions.decisions(self.log.history(version))
        if self.role_check is not None and not rows.empty:
            rows = rows[[self.role_check(str(r["actor"]), decisions.NEEDS[r["action"]]) for _, r in rows.iterrows()]]
        return None if rows.empty else rows.iloc[-1]

    def apply_decision(self, version: str):
        """Put the latest recorded decision on the version's tags (needs the model's owner); return the row.

        An approval sets the ``approval`` tag and status ``PROMOTION_PENDING`` (``promote``
        then makes it champion), a rejection status ``rejected``."""
        decision = self.latest_decision(version)
        if decision is None or decision["action"] == audit.PROMOTED:
            return decision
        if decision["action"] == audit.REJECTED:
            self.registry.set_version_tag(version, STATUS_TAG, "rejected")
            return decision
        self.registry.set_version_tag(version, "approval",
                                      json.dumps({"by": decision["actor"], "action": decision["action"],
                                                  "comment": decision["comment"],
                                                  "override_reason": decision["override_reason"]}))
        if self.alias(CHAMPION) != version:
            self.registry.set_version_tag(version, STATUS_TAG, PROMOTION_PENDING)
        return decision

    def promotion_blockers(self, version: str) -> list[str]:
        """Why ``version`` may not become champion now (empty: it may)."""
        validation = self._validation_for_decision(version)
        latest = self.latest_decision(version)       # a row whose role may not decide does not count
        last = None if latest is None else latest["action"]
        blockers = []
        if last == audit.REJECTED:
            blockers.append("it was rejected")
        if validation.failures and last != audit.OVERRIDDEN:
            blockers.append("hard checks fail: " + ", ".join(f"{c.name} ({c.value} vs {c.threshold})"
                                                             for c in validation.failures))
        if validation.referrals and last not in (audit.APPROVED, audit.OVERRIDDEN):
            blockers.append(REFERRED_BLOCKER + ": " + "; ".join(f"{c.name}: {c.detail}" for c in validation.referrals))
        if self.approval_mode != "auto" and last not in (audit.APPROVED, audit.OVERRIDDEN):
            blockers.append("waiting for approval (approval mode is manual)")
        return blockers

    def promote(self, version=None, comment: str | None = None) -> str:
        """Make ``version`` (default: the challenger) the champion, all or nothing."""
        self.identity.require("promote")
        version = self._require_version(version or self._challenger_or_fail())
        previous = self.alias(CHAMPION)
        if previous == version:
            self.serve_champion(version)       # a promotion whose endpoint update failed is finished here
            return version
        blockers = self.promotion_blockers(version)
        if blockers:
            raise UserError(f"version {version} is not promoted: " + "; ".join(blockers))
        self._move_champion(version, previous, audit.PROMOTED, comment)
        return version

    def rollback(self, to_version, comment: str | None = None, override_reason: str | None = None) -> str:
        """Move ``champion`` back to an earlier version that passed its checks.

        A version that was rejected, or whose latest validation fails hard checks (say after a
        threshold was raised), needs ``override_reason``, which the audit row keeps."""
        self.identity.require("rollback")
        version = self._require_version(to_version)
        previous = self.alias(CHAMPION)
        if previous == version:
            self.serve_champion(version)
            return version
        validation = self.latest_validation(version)
        history = self.log.history(version)
        was_champion = not history.empty and audit.PROMOTED in set(history["action"])
        if validation is None or not (validation.passed or was_champion):
            raise UserError(f"version {version} cannot be rolled back to: it never passed its checks")
        concerns = self._rollback_concerns(version, validation)
        reason = (override_reason or "").strip() or None
        if concerns and reason is None:
            raise UserError(f"rolling back to version {version} needs --override-reason, which is recorded: "
                            + "; ".join(concerns))
        self._move_champion(version, previous, audit.ROLLED_BACK, comment or f"rolled back from {previous}",
                            reason if concerns else None)
        return version

    def _rollback_concerns(self, version: str, validation: Validation) -> list[str]:
        """Why rolling back to ``version`` needs an override reason (empty: it does not)."""
        decisions = self.log.history(version)
        decisions = decisions[decisions["action"].isin(DECISIONS)]
        concerns = ["it was rejected"] if not decisions.empty and decisions.iloc[-1]["action"] == audit.REJECTED \
            else []
        if validation.failures:
            concerns.append("hard checks fail: " + ", ".join(f"{c.name} ({c.value} vs {c.threshold})"
                                                            for c in validation.failures))
        return concerns

    def _move_champion(self, version: str, previous: str | None, action: str, comment: str | None,
                       override_reason: str | None = None) -> None:
        checks = (self.latest_validation(version) or Validation(version, [])).checks
        event = self._event(version, action, checks, comment, override_reason,
                            passed=not hard_failures(checks) and not referrals(checks))
        status = self.registry.version_tags(version).get(STATUS_TAG)
        intent = {"event_id": event["event_id"], "version": version, "previous_champion": previous,
                  "previous_status": status}
        self.registry.set_model_tag(INTENT_TAG, json.dumps(intent))
        failpoint("promotion:after_intent")
        if previous:
            self.registry.set_version_tag(previous, STATUS_TAG, "retired")
        self.registry.set_version_tag(version, STATUS_TAG, CHAMPION)
        failpoint("promotion:after_tags")
        self.registry.set_alias(CHAMPION, version)
        failpoint("promotion:after_alias")
        # stamped when recorded: readers take the champion from this row, never earlier than the alias
        self.log.record({**event, "event_time": dt.datetime.now(dt.timezone.utc)})
        failpoint("promotion:after_audit")
        self.registry.delete_model_tag(INTENT_TAG)
        self.refresh_model_card(version)
        self.serve_champion(version)

    def serve_champion(self, version: str) -> None:
        """The serving endpoint follows the champion, where this governance has one to move."""
        if self.champion_endpoint is not None:
            self.champion_endpoint(version)

    # -- reporting ------------------------------------------------------------------
    def pending(self) -> list[int]:
        """Validated versions waiting for an approver: manual mode, or a referral in any mode."""
        challenger = self.alias(CHALLENGER)
        if challenger is None or challenger == self.alias(CHAMPION):
            return []
        history = self.log.history(challenger)
        decided = not history.empty and bool(set(history["action"]) & set(DECISIONS))
        validated = not history.empty and audit.VALIDATED in set(history["action"])
        if decided or not validated:
            return []
        if self.approval_mode == "auto" and not (self.latest_validation(challenger) or Validation("", [])).referrals:
            return []
        return [int(challenger)]

    def status(self) -> dict:
        champion, challenger = audited_champion(self.log), self.alias(CHALLENGER)
        interrupted = self.interrupted_move()

        def checks_of(version):
            validation = self.latest_validation(version) if version else None
            return [c.as_dict() for c in validation.checks] if validation else []

        return {"model_name": self.model_name, "approval_mode": self.approval_mode,
                "champion": int(champion) if champion else None,
                "challenger": int(challenger) if challenger else None,
                "pending": self.pending(), "checks": checks_of(challenger),
                "referred": [c for c in checks_of(challenger) if c["hard"] and c["verdict"] == "refer"],
                "champion_checks": checks_of(champion),
                "interrupted": int(interrupted["version"]) if interrupted else None}

    def refresh_model_card(self, version: str) -> str:
        """Re-render the card after a decision, with the training run's group metrics."""
        validation = self.latest_validation(version)
        run_id = self.registry.version(version).run_id
        groups = self.registry.run_json(run_id, f"{EVALUATION_ARTIFACT_DIR}/{GROUP_METRICS_FILE}")
        return self.attach_model_card(version, validation.checks if validation else [], groups)

    def attach_model_card(self, version: str, checks: list[Check], groups: list[dict]) -> str:
        mv = self.registry.version(version)
        run = self.registry.run(mv.run_id)
        card = render_model_card(self.model_name, version, run, [c.as_dict() for c in checks], groups,
                                 self.log.history(version))
        self.registry.describe(version, mv.run_id, card, MODEL_CARD_FILE)
        return card
