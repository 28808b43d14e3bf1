"""Rebuild a registered version from its lineage and compare it with the version the registry holds.

``governance reproduce --version N``: the training frame is read back at the Delta version
the lineage records (time travel: delta-rs locally, ``VERSION AS OF`` on Databricks), its
hash compared with the recorded one, the model retrained with the recorded parameters
(seed, salt, candidates, inputs), and the rebuilt model compared with the registered one:
the selected candidate, the predictions on the version's evaluation rows (its held-out
members, re-read at the recorded version), every training metric the run logged and every
governance check's value and verdict (both models judged now, against the same champion
on the same rows). The environment is compared too: the installed versions of the
packages that shape a model and the code commit.

Tolerance: none. Training is deterministic by construction (members sorted by key, the
split and folds from a salted hash of the key, a fixed seed and one BLAS/OpenMP thread;
docs/architecture.md "Reproducible training"), so every number must be equal to the last
bit; a difference, however small, is reported. The outcome is written to the audit log
and as tags on the version (``reproduced_at``, ``reproduction_result``) by ``record``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from healthcare_mlops.errors import UserError, VersionUnavailable
from healthcare_mlops.features.definitions import FAIRNESS_GROUP_COLUMNS, MODEL_INPUT_COLUMNS
from healthcare_mlops.governance import audit
from healthcare_mlops.governance.champion import audited_champion
from healthcare_mlops.governance.checks import Evidence, run_checks
from healthcare_mlops.governance.evaluation import evaluation_rows, gather_evidence, scored_metrics
from healthcare_mlops.governance.group_evidence import GroupEvidence
from healthcare_mlops.governance.lineage import (BY_TAG, REPRODUCED_AT_TAG, RESULT_TAG, RecordedLineage,
                                                 recorded_lineage)
from healthcare_mlops.governance.thresholds import GovernanceThresholds
from healthcare_mlops.identity import Identity
from healthcare_mlops.modeling.frame_hash import frame_hash
from healthcare_mlops.modeling.pyfunc import InsuranceRiskModel
from healthcare_mlops.modeling.training import TrainingResult, train
from healthcare_mlops.tables import ML_INSURANCE_FEATURES

TOLERANCE = 0.0                          # see the module docstring: nothing here is non-deterministic
NUMERIC_OUTPUTS = ("predicted_annual_charges", "risk_score", "interval_lower", "interval_upper")
IDENTICAL = "identical"


@dataclass(frozen=True)
class Sources:
    """What a reproduction reads and writes through, handed in by its caller (the composition root).

    ``catalog``: the target's ``TableCatalog``; ``registry``: the model's registry adapter
    (runtime/model_registry.py); ``installed_versions``: package name -> installed version, and
    ``code_commit`` the commit running now (runtime/lineage.py)."""

    catalog: Any
    registry: Any
    log: audit.AuditLog
    thresholds: GovernanceThresholds
    installed_versions: Callable[[tuple[str, ...]], dict[str, str]]
    code_commit: str | None


@dataclass
class Comparison:
    """One thing compared: what the version records and what the rebuild gave."""

    name: str
    recorded: str
    reproduced: str
    same: bool


@dataclass
class Reproduction:
    model_name: str
    version: str
    reproduced_at: str
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""                      # why the version could not be rebuilt at all

    @property
    def differences(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.same]

    @property
    def passed(self) -> bool:
        return not self.error and not self.differences

    @property
    def result(self) -> str:
        """``identical``, ``different: <names>`` or ``not reproducible: <why>`` (the version's tag)."""
        if self.error:
            return f"not reproducible: {self.error}"
        if self.differences:
            return "different: " + "; ".join(c.name for c in self.differences)
        return IDENTICAL

    def as_dict(self) -> dict:
        return {"model_name": self.model_name, "version": int(self.version), "reproduced_at": self.reproduced_at,
                "passed": self.passed, "result": self.result, "error": self.error, "notes": self.notes,
                "differences": [asdict(c) for c in self.differences],
                "comparisons": [asdict(c) for c in self.comparisons]}


def _number(value) -> str:
    """A float exactly as stored (repr round-trips), anything else as text."""
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def _same(name: str, recorded, reproduced) -> Comparison:
    if isinstance(recorded, (float, np.floating)) or isinstance(reproduced, (float, np.floating)):
        equal = recorded is not None and reproduced is not None and \
            abs(float(recorded) - float(reproduced)) <= TOLERANCE
    else:
        equal = recorded == reproduced
    return Comparison(name, _number(recorded), _number(reproduced), bool(equal))


# -- the environment -------------------------------------------------------------------------------
def environment_comparisons(lineage: RecordedLineage, sources: Sources) -> tuple[list[Comparison], list[str]]:
    """Recorded vs installed package versions and code commit; notes on what the record cannot pin."""
    installed = sources.installed_versions(tuple(lineage.packages))
    comparisons = [_same(f"package {name}", version, installed[name])
                   for name, version in sorted(lineage.packages.items())]
    notes, current = [], sources.code_commit
    if lineage.git_commit is None or current is None:
        notes.append("the code commit is unknown at training or now: the code is not compared")
    else:
        comparisons.append(_same("code commit", lineage.git_commit, current))
    if lineage.git_dirty:
        notes.append("the version was trained from a tree with uncommitted changes: its commit does not pin "
                     "all of its code")
    return comparisons, notes


# -- the data --------------------------------------------------------------------------------------
def features_entry(lineage: RecordedLineage, catalog) -> dict:
    """The recorded features table read, checked to be this target's table."""
    entry = lineage.tables.get(ML_INSURANCE_FEATURES)
    fqn = catalog.fqn(ML_INSURANCE_FEATURES)
    if entry is None or entry.get("table") != fqn:
        raise UserError(f"the version was trained on {entry and entry.get('table')!r}, not on {fqn}")
    return entry


def read_recorded_frame(catalog, entry: dict) -> pd.DataFrame:
    """The training frame as it was: the recorded as-of date at the recorded Delta version."""
    as_of = dt.date.fromisoformat(str(entry["as_of_date"]))
    table = catalog.read_arrow(ML_INSURANCE_FEATURES, [("as_of_date", "=", as_of)],
                                               version=int(entry["delta_version"]))
    return table.to_pandas(date_as_object=True)


# -- the model -------------------------------------------------------------------------------------
class _Rebuilt:
    """The rebuilt pyfunc with the two methods of a loaded one that ``scored_metrics`` uses."""

    def __init__(self, model: InsuranceRiskModel):
        self.model = model

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.model.predict(None, frame)

    def unwrap_python_model(self) -> InsuranceRiskModel:
        return self.model


def recorded_inputs(lineage: RecordedLineage) -> tuple[str, ...]:
    """The model inputs the version was trained with."""
    return tuple(lineage.params.get("inputs", ",".join(MODEL_INPUT_COLUMNS)).split(","))


def retrain(frame: pd.DataFrame, lineage: RecordedLineage) -> tuple[TrainingResult, tuple[str, ...]]:
    """The model trained again with the recorded parameters; and its inputs."""
    inputs = recorded_inputs(lineage)
    cap = lineage.params.get("selection_cap", "none")      # versions before the cap compared on every row
    result = train(frame, seed=lineage.seed, candidates=tuple(lineage.params["candidates"].split(",")),
                   inputs=inputs, salt=lineage.split_salt, selection_cap=None if cap == "none" else int(cap))
    return result, inputs


def prediction_comparisons(registered, rebuilt: _Rebuilt, rows: pd.DataFrame, inputs: list[str]) -> list[Comparison]:
    """Max absolute difference per output on the evaluation rows (0 expected), and category mismatches."""
    before, after = registered.predict(rows[inputs]), rebuilt.predict(rows[inputs])
    comparisons = [Comparison(f"predictions {column} (max |difference| on {len(rows)} evaluation rows)", "0.0",
                              repr(float(diff)), bool(diff <= TOLERANCE))
                   for column in NUMERIC_OUTPUTS
                   for diff in [np.max(np.abs(before[column].to_numpy(float) - after[column].to_numpy(float)))]]
    mismatched = int((before["risk_category"].to_numpy() != after["risk_category"].to_numpy()).sum())
    comparisons.append(Comparison("predictions risk_category (rows that differ)", "0", str(mismatched),
                                  mismatched == 0))
    return comparisons


def metric_comparisons(logged: dict, result: TrainingResult) -> list[Comparison]:
    """Every metric the training run logged that the rebuild computes again."""
    rebuilt = dict(result.metrics)
    for name, values in result.cv_results.items():
        rebuilt.update({f"candidate_{name}_{key}": value for key, value in values.items()})
    return [_same(f"metric {key}", logged.get(key), rebuilt[key]) for key in sorted(rebuilt)]


def verdict_comparisons(registered_checks, rebuilt_checks) -> list[Comparison]:
    """Each governance check's value and verdict: the registered model's vs the rebuilt one's."""
    rebuilt = {c.name: c for c in rebuilt_checks}
    comparisons = []
    for check in registered_checks:
        other = rebuilt.get(check.name)
        comparisons.append(Comparison(
            f"check {check.name}", f"{check.verdict} ({check.value})",
            "missing" if other is None else f"{other.verdict} ({other.value})",
            other is not None and other.verdict == check.verdict and other.value == check.value))
    return comparisons


def _model_comparisons(sources: Sources, version: str, run, lineage: RecordedLineage,
                       frame: pd.DataFrame) -> list[Comparison]:
    """Retrain and compare candidate, predictions, metrics and checks with the registered version."""
    result, trained_inputs = retrain(frame, lineage)
    inputs = sources.registry.inputs(version) or list(trained_inputs)
    extra_inputs = tuple(c for c in trained_inputs if c not in MODEL_INPUT_COLUMNS)
    rebuilt = _Rebuilt(InsuranceRiskModel(result.pipeline, result.intervals, result.prediction_reference,
                                          result.actual_reference, extra_inputs=extra_inputs))
    data_version = json.loads(run.data.tags.get("training_data_version") or "{}")
    rows = evaluation_rows(sources.catalog, data_version, run.data.params)
    champion_version = audited_champion(sources.log)
    registered = gather_evidence(sources.catalog, sources.registry, version, champion_version)
    if registered.failure:
        raise UserError(f"the registered version {version} cannot be judged: {registered.failure}")
    rebuilt_evidence = Evidence(
        metrics=scored_metrics(rebuilt, inputs, rows), oof=GroupEvidence.from_rows(result.oof_evidence,
                                                                                  FAIRNESS_GROUP_COLUMNS),
        inputs=inputs, model_loads=True, champion_metrics=registered.champion_metrics, lineage=registered.lineage)
    thresholds = sources.thresholds
    return [_same("selected candidate", run.data.params.get("candidate"), result.candidate),
            *prediction_comparisons(sources.registry.load(version), rebuilt, rows, inputs),
            *metric_comparisons(run.data.metrics, result),
            *verdict_comparisons(run_checks(registered, thresholds), run_checks(rebuilt_evidence, thresholds))]


def reproduce(sources: Sources, version) -> Reproduction:
    """Rebuild ``version`` from its lineage and compare (see the module docstring); records nothing."""
    if not str(version).isdigit():          # a job parameter or CLI text reaches the registry only as a number
        raise UserError(f"a model version is a number, got {str(version)!r}")
    model_name = sources.registry.model_name
    mv = sources.registry.version(version)
    if mv is None:
        raise UserError(f"{model_name} has no version {version}")
    lineage = recorded_lineage(mv.tags, str(version))
    report = Reproduction(model_name, str(mv.version), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    report.comparisons, report.notes = environment_comparisons(lineage, sources)
    try:
        frame = read_recorded_frame(sources.catalog, features_entry(lineage, sources.catalog))
    except VersionUnavailable as exc:
        report.error = str(exc)
        return report
    report.comparisons.append(_same("training frame hash", lineage.frame_hash,
                                    frame_hash(frame, recorded_inputs(lineage))))
    report.comparisons += _model_comparisons(sources, str(mv.version), sources.registry.run(mv.run_id), lineage, frame)
    return report


def record(sources: Sources, identity: Identity, report: Reproduction) -> None:
    """The outcome as tags on the version and one audit row (who reproduced it, when, the result)."""
    for key, value in ((REPRODUCED_AT_TAG, report.reproduced_at), (RESULT_TAG, report.result[:4000]),
                       (BY_TAG, identity.user)):
        sources.registry.set_version_tag(report.version, key, value)
    sources.log.record(sources.log.event(report.version, audit.REPRODUCED, identity, comment=report.result,
                                         hard_checks_passed=report.passed))


def reproduce_version(sources: Sources, identity: Identity, version) -> Reproduction:
    """``reproduce`` on behalf of ``identity`` (operator or higher), the outcome recorded."""
    identity.require("reproduce")
    report = reproduce(sources, version)
    record(sources, identity, report)
    return report
