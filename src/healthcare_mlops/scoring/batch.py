"""Batch scoring in Spark: features -> the model's output + business rules, on Arrow batches.

``score_features`` maps each Arrow batch of a features DataFrame through ``score_batch``
(``DataFrame.mapInArrow``): the rows that pass the model's input contract are scored
with one model call per batch, the business rules (``scoring/rules.py``) are applied,
and the batch goes back to Spark as Arrow; only the five model inputs cross into pandas.
No row-at-a-time Python, and no ``mlflow.pyfunc.spark_udf``: the model is loaded once
per Python worker process and kept in a module-level cache keyed by its URI (Spark
reuses its Python workers, so later tasks find it loaded). While it scores a batch a
worker caps BLAS/OpenMP at one thread, since Spark already runs one worker per core
(two workers each starting one OpenMP thread per core would oversubscribe the cores).

The model reaches the workers as a ``ModelSource``: the path of its downloaded files
when the workers share the driver's file system (the local runtime), otherwise its files
zipped and broadcast (a classic cluster) or shipped with the function (Spark Connect).

``quarantine_rows`` runs only the input contract (no model) and gives the rows it
refuses as ``data_quality_quarantine`` rows; both use ``row_problems``, so features =
predictions + quarantined exactly. ``output_contract_problems`` is the check of a written
predictions partition (validation mode).

No pyspark import at module level: Spark workers import this module to run
``score_batch``, and the console imports nothing of it.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from healthcare_mlops.explanations.contributions import (ADDITIVITY_TOLERANCE_USD, BASE_COLUMN, CONTRIBUTION_COLUMNS,
                                                         EXPLANATION_COLUMNS, FLOOR_COLUMN, TOP_REASONS_COLUMN)
from healthcare_mlops.explanations.reasons import join_words, outside_matrix, top_reasons
from healthcare_mlops.features.definitions import CARRIED_GROUP_COLUMNS, MODEL_INPUT_COLUMNS
from healthcare_mlops.modeling.input_contract import row_problems, typed_model_input
from healthcare_mlops.modeling.pyfunc import OUTPUT_COLUMNS, InsuranceRiskModel, model_inputs, score
from healthcare_mlops.modeling.risk import HIGH_RISK_CATEGORY, RISK_CATEGORIES
from healthcare_mlops.scoring.contract import PARTITION_COLUMN
from healthcare_mlops.scoring.rules import RULE_COLUMNS, BusinessRules, apply_rules
from healthcare_mlops.tables import (DATA_QUALITY_QUARANTINE_SPEC, IS_CRITICAL_RISK, ML_PATIENT_PREDICTIONS_SPEC,
                                     STRING, Columns)

KEY = "patient_natural_key"
# What a scored row carries through from its features row (no personal data: the
# de-identified key, the model inputs and the two group columns monitoring needs).
CARRIED = (KEY, *MODEL_INPUT_COLUMNS, *CARRIED_GROUP_COLUMNS)
# The columns score_batch returns, in the predictions contract's order; the job adds
# scoring_date and the model's identity as constants.
SCORED = ML_PATIENT_PREDICTIONS_SPEC.columns.without("scoring_date", "model_name", "model_version", "model_run_id",
                                                      "scored_at")
SCORED_COLUMNS = SCORED.names
# Rows per model call in a worker (see score_arrow_batches).
SCORING_CHUNK_ROWS = 50_000
# Null when the row is not explained or the model version cannot be explained exactly
# (see explained_columns).
EXPLAINED = (*EXPLANATION_COLUMNS, TOP_REASONS_COLUMN)
# Which members the batch explains. The explanation columns are read where a member is
# flagged for review: review_reasons in words and the console's review queue (app/queries.py)
# are their only readers. Explaining only those keeps a tree champion's scoring at the
# speed of the linear one's (TreeSHAP costs several times a prediction; README, speed table).
# Any other member's reasons come from the serving endpoint ({"params": {"reasons": true}}).
EXPLAIN_ALL, EXPLAIN_FLAGGED, EXPLAIN_NONE = "all", "flagged", "none"
EXPLAIN_SCOPES = (EXPLAIN_ALL, EXPLAIN_FLAGGED, EXPLAIN_NONE)
PROBLEM = Columns.of((KEY, STRING), ("column_name", STRING), ("reason", STRING), ("raw_record", STRING))
SCORED_ARROW = SCORED.arrow_schema()
PROBLEM_ARROW = PROBLEM.arrow_schema()


# ----------------------------------------------------------------------------- the model on a worker

@dataclass(frozen=True)
class ModelSource:
    """Where a worker finds the model; ``uri`` and ``run_id`` name it and key the worker's cache.

    (The run id is in the key because two local homes can both hold a version 1 of the
    same model name, and Spark may reuse a worker across them, as a test session does.)
    """

    uri: str
    local_path: str | None = None
    archive: bytes | None = None    # the model folder's zip bytes
    run_id: str = ""
    # path -> model: a runtime adapter's function (runtime/model_loading.py), pickled by name
    # with the scoring function, so this module needs no MLflow.
    loader: Callable[[str], object] | None = None

    @property
    def key(self) -> str:
        return f"{self.uri}#{self.run_id}"

    def materialize(self) -> str:
        """A local directory holding the model's files."""
        if self.local_path and os.path.isdir(self.local_path):
            return self.local_path
        if self.archive is None:
            raise FileNotFoundError(f"the files of {self.uri} are not at {self.local_path} and were not shipped")
        payload = self.archive
        folder = tempfile.mkdtemp(prefix="hc-model-")
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            archive.extractall(folder)
        return folder


def zip_folder(path: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, _, files in os.walk(path):
            for name in files:
                full = os.path.join(root, name)
                archive.write(full, os.path.relpath(full, path))
    return buffer.getvalue()


_MODELS: dict = {}
_THREADS: list = []


def cached_model(source: ModelSource):
    """The pyfunc at ``source``, loaded once per process and kept for the next tasks."""
    model = _MODELS.get(source.key)
    if model is None:
        if source.loader is None:
            raise ValueError(f"no loader for {source.uri}: ModelSource.loader reads the model's files")
        model = source.loader(source.materialize())
        _MODELS.clear()             # one model per worker at a time
        _MODELS[source.key] = model
    return model


def one_thread():
    """A context that caps BLAS/OpenMP at one thread (Spark runs one worker per core already).

    The controller is built once per process; entering it per batch is cheap, and the
    cap does not outlive the batch.
    """
    if not _THREADS:
        from threadpoolctl import ThreadpoolController

        _THREADS.append(ThreadpoolController())
    return _THREADS[0].limit(limits=1)


def model_input_names(model) -> list[str]:
    """The input columns of a pyfunc or an MLmodel (its signature), or the contract's without one."""
    mlmodel = model if hasattr(model, "get_input_schema") else model.metadata
    return model_inputs(mlmodel.get_input_schema(), mlmodel.metadata) or list(MODEL_INPUT_COLUMNS)


# ----------------------------------------------------------------------------- the functional core

def split_problems(problems: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``"<field>: <reason>"`` -> (field, reason)."""
    parts = problems.str.split(": ", n=1, expand=True)
    return parts[0], parts[1] if parts.shape[1] > 1 else pd.Series("", index=problems.index)


def _json_value(value):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def problem_rows(frame: pd.DataFrame, problems: pd.Series) -> pd.DataFrame:
    """The rows with a problem, as (key, column_name, reason, raw_record with the de-identified inputs)."""
    bad = problems.notna()
    columns, reasons = split_problems(problems[bad].astype(str))
    shown = [c for c in MODEL_INPUT_COLUMNS if c in frame.columns]
    records = [json.dumps({c: _json_value(v) for c, v in zip(shown, row)}, default=str)
               for row in frame.loc[bad, shown].itertuples(index=False, name=None)]
    return pd.DataFrame({KEY: frame.loc[bad, KEY].astype(str).to_numpy(), "column_name": columns.to_numpy(),
                         "reason": reasons.to_numpy(), "raw_record": records})


def model_output(model, inputs: pd.DataFrame, input_names: list[str]) -> pd.DataFrame:
    """The model's output for rows that already passed the input contract.

    For this project's model (an ``InsuranceRiskModel``, as ``ModelSource.loader`` unwraps it)
    that is the body of its ``predict`` after the contract check (``pyfunc.score`` on the
    typed inputs): the check just ran on the same rows, so it is not run twice. Any other
    pyfunc is called through ``predict``.
    """
    if isinstance(model, InsuranceRiskModel):
        if all(c in inputs.columns for c in model.extra_inputs):
            typed = typed_model_input(inputs, model.extra_inputs)
            return score(model.pipeline, model.intervals, model.prediction_reference, typed)
        output = model.predict(None, inputs[input_names])
    else:
        output = model.predict(inputs[input_names])
    output.index = inputs.index
    return output


def explained_rows(ruled: pd.DataFrame, explain: str) -> np.ndarray:
    """Which scored rows carry the explanation (``EXPLAIN_SCOPES``)."""
    if explain not in EXPLAIN_SCOPES:
        raise ValueError(f"explain must be one of {', '.join(EXPLAIN_SCOPES)}, not {explain!r}")
    if explain == EXPLAIN_FLAGGED:
        return ruled["requires_review"].to_numpy(dtype=bool)
    return np.full(len(ruled), explain == EXPLAIN_ALL)


def _scattered(values, rows: np.ndarray, kind: pa.DataType) -> pa.Array:
    """``values`` (one per True of ``rows``) spread over all rows, null elsewhere."""
    if rows.all():
        return values if isinstance(values, pa.Array) else pa.array(values, type=kind)
    positions = np.cumsum(rows) - 1
    return pc.take(values if isinstance(values, pa.Array) else pa.array(values, type=kind),
                   pa.array(np.where(rows, positions, 0), mask=~rows))


def explained_columns(model, ruled: pd.DataFrame, inputs: pd.DataFrame, rules: BusinessRules,
                      explain: str = EXPLAIN_FLAGGED) -> dict:
    """The explanation columns of scored rows after the rules, and ``review_reasons`` in words.

    Only the rows ``explain`` names are explained (``EXPLAIN_FLAGGED``: the members flagged
    for review); the others get null explanation columns. The floor line absorbs the rules'
    minimum charge, so base + contributions + floor = the written prediction; a flagged
    member's reason codes are followed by its top reasons. A model that cannot be explained
    exactly gives null columns and the reason codes as they are.
    """
    explainer = getattr(model, "explainer", None) if isinstance(model, InsuranceRiskModel) else None
    rows = explained_rows(ruled, explain)
    # The table has a contribution column for the five inputs only.
    if explainer is None or explainer.inputs != MODEL_INPUT_COLUMNS or not rows.any():
        return {c: np.full(len(ruled), None) for c in EXPLAINED}
    chosen = inputs[rows]
    explanation = explainer.explain(model.pipeline, typed_model_input(chosen, model.extra_inputs))
    predicted = ruled["predicted_annual_charges"].to_numpy(dtype=float)[rows]
    contributions = explanation.contributions
    outside = outside_matrix(chosen, rules.training_range, MODEL_INPUT_COLUMNS)
    top = top_reasons(chosen, contributions, MODEL_INPUT_COLUMNS, outside)
    values = {BASE_COLUMN: np.full(len(chosen), explanation.base),
              **{c: contributions[:, i] for i, c in enumerate(CONTRIBUTION_COLUMNS)},
              FLOOR_COLUMN: predicted - explanation.base - contributions.sum(axis=1)}
    columns = {c: _scattered(v, rows, pa.float64()) for c, v in values.items()}
    top = _scattered(top, rows, pa.string())
    codes = pa.array(ruled["review_reasons"].to_numpy(dtype=object), type=pa.string())
    review = pc.if_else(pc.equal(codes, ""), codes, join_words(codes, pc.fill_null(top, "")))
    return {**columns, TOP_REASONS_COLUMN: top, "review_reasons": review}


def score_batch(batch: pa.RecordBatch, model, rules: BusinessRules,
                input_names: list[str] | None = None, explain: str = EXPLAIN_FLAGGED) -> pa.RecordBatch:
    """Scored rows (``SCORED_COLUMNS``) for the rows of a features batch that pass the input contract.

    Only the model's inputs cross into pandas; the key and the group columns stay Arrow.
    One model call for the whole batch, then the rules on its output, then the member's
    explanation of the rows ``explain`` names (``EXPLAIN_NONE``: null explanation columns, the
    cost baseline).
    """
    names = list(input_names or MODEL_INPUT_COLUMNS)
    frame = batch.select(list(dict.fromkeys((*MODEL_INPUT_COLUMNS, *names)))).to_pandas()
    problems = row_problems(frame)
    bad = problems.notna().to_numpy()
    if bad.any():
        keep = ~bad
        batch, frame = batch.filter(pa.array(keep)), frame[keep]
    if not len(frame):
        return pa.RecordBatch.from_pylist([], schema=SCORED_ARROW)
    output = model_output(model, frame, names)
    ruled = apply_rules(output, frame, rules)
    computed = {**{c: output[c].to_numpy() for c in OUTPUT_COLUMNS}, **{c: ruled[c].to_numpy() for c in RULE_COLUMNS},
                **explained_columns(model, ruled, frame, rules, explain)}
    arrays = []
    for field in SCORED_ARROW:
        if field.name in computed:
            values = computed[field.name]
            arrays.append(values if isinstance(values, pa.Array) else pa.array(values, type=field.type))
        else:
            column = batch.column(field.name)
            arrays.append(column if column.type == field.type else column.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=SCORED_ARROW)


def score_frame(frame: pd.DataFrame, model, rules: BusinessRules, input_names: list[str] | None = None,
                explain: str = EXPLAIN_FLAGGED) -> pd.DataFrame:
    """``score_batch`` for a pandas frame of features rows (tests, notebooks)."""
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    return score_batch(batch, model, rules, input_names, explain).to_pandas()


def coalesce(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The batches regrouped into batches of about ``rows`` rows (the last one smaller)."""
    pending, count = [], 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pending[0] if len(pending) == 1 else pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            pending, count = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def score_arrow_batches(batches: Iterator[pa.RecordBatch], source: ModelSource, rules: BusinessRules,
                        input_names: list[str], chunk_rows: int = SCORING_CHUNK_ROWS,
                        explain: str = EXPLAIN_FLAGGED) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body: ``score_batch`` per ``chunk_rows`` rows, with the worker's cached model.

    Spark hands over Arrow batches of ``spark.sql.execution.arrow.maxRecordsPerBatch``
    rows (10,000 by default); scoring them in chunks of 50,000 spreads the per-call costs
    of the model and of pandas over more rows (about 15 % less time per row, measured).
    """
    model = cached_model(source)
    for batch in coalesce(batches, chunk_rows):
        with one_thread():
            scored = score_batch(batch, model, rules, input_names, explain)
        if scored.num_rows:
            yield scored


def _to_batch(frame: pd.DataFrame, schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pandas(frame, schema=schema, preserve_index=False)


def problem_arrow_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body of the quarantine pass: the input contract only, no model."""
    for batch in batches:
        if batch.num_rows:
            frame = batch.to_pandas()
            problems = row_problems(frame)
            if problems.notna().any():
                yield _to_batch(problem_rows(frame, problems), PROBLEM_ARROW)


# ----------------------------------------------------------------------------- the Spark shell

def model_source(uri: str, local_path: str, shared_filesystem: bool, run_id: str = "",
                 loader: Callable[[str], object] | None = None) -> ModelSource:
    """How the workers get the model: its path when they share the driver's disk, else its zipped files."""
    if shared_filesystem:
        return ModelSource(uri=uri, local_path=local_path, run_id=run_id, loader=loader)
    # Serverless is Spark Connect, which has no SparkContext to broadcast with: the zipped
    # model's bytes travel with the scoring function instead.
    return ModelSource(uri=uri, local_path=None, archive=zip_folder(local_path), run_id=run_id, loader=loader)


def score_features(features, source: ModelSource, rules: BusinessRules, input_names: list[str],
                   explain: str = EXPLAIN_FLAGGED):
    """Spark DataFrame of features -> Spark DataFrame of ``SCORED_COLUMNS`` (contract-valid rows only)."""
    columns = list(dict.fromkeys((*CARRIED, *input_names)))
    missing = [c for c in columns if c not in features.columns]
    if missing:
        from healthcare_mlops.errors import UserError

        raise UserError(f"the features lack columns the scoring needs: {', '.join(missing)}")
    body = functools.partial(score_arrow_batches, source=source, rules=rules, input_names=list(input_names),
                             explain=explain)
    return features.select(*columns).mapInArrow(body, SCORED.ddl)


def predictions(scored, scoring_date, model: dict, scored_at):
    """The scored rows as ``ml_patient_predictions`` rows (the contract's columns, order and types)."""
    from pyspark.sql import functions as F

    constants = {PARTITION_COLUMN: F.lit(scoring_date), "model_name": F.lit(model["name"]),
                 "model_version": F.lit(str(model["version"])), "model_run_id": F.lit(model["run_id"]),
                 "scored_at": F.lit(scored_at)}
    return scored.select(*[(constants[name] if name in constants else F.col(name)).cast(kind).alias(name)
                           for name, kind in ML_PATIENT_PREDICTIONS_SPEC.columns.pairs])


def quarantine_rows(features, stage: str, source: str, as_of_date):
    """``data_quality_quarantine`` rows for the features rows that break the model's input contract."""
    from pyspark.sql import functions as F

    checked = features.select(*[c for c in (KEY, *MODEL_INPUT_COLUMNS) if c in features.columns]) \
        .mapInArrow(problem_arrow_batches, PROBLEM.ddl)
    values = {"stage": F.lit(stage), "source": F.lit(source), "source_row": F.lit(None),
              "record_key": F.col(KEY), "column_name": F.col("column_name"), "reason": F.col("reason"),
              "raw_record": F.col("raw_record"), "as_of_date": F.lit(as_of_date)}
    return checked.select(*[values[name].cast(kind).alias(name)
                            for name, kind in DATA_QUALITY_QUARANTINE_SPEC.columns.pairs])


# ----------------------------------------------------------------------------- the output contract

def output_contract_problems(frame, min_predicted_charges: float | None = None) -> list[str]:
    """What is wrong with a written predictions partition (Spark DataFrame); empty when nothing is.

    Columns and types as ``scoring/contract.py`` says, no nulls (the explanation: only when the
    model cannot be explained), explanations that add up, lower <= predicted <= upper,
    risk score in 0-100, known categories, flags consistent with the categories and reasons,
    one row per member, the floor respected, and at least one row.
    """
    from pyspark.sql import functions as F

    expected = list(ML_PATIENT_PREDICTIONS_SPEC.columns.pairs)
    actual = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    problems = []
    missing = [name for name, _ in expected if name not in actual]
    extra = [name for name in actual if name not in dict(expected)]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected columns: {', '.join(extra)}")
    for name, kind in expected:
        if name in actual and actual[name] != kind.lower():
            problems.append(f"{name} is {actual[name]}, the contract says {kind.lower()}")
    if problems:
        return problems

    col = F.col
    categories = [label for _, label in RISK_CATEGORIES]
    checks = {f"null {name}": col(name).isNull() for name, _ in expected if name not in EXPLAINED}
    explained = col(BASE_COLUMN) + sum((col(c) for c in CONTRIBUTION_COLUMNS), F.lit(0.0)) + col(FLOOR_COLUMN)
    checks[f"base + contributions + floor != predicted_annual_charges (> {ADDITIVITY_TOLERANCE_USD:g} USD)"] = \
        F.abs(explained - col("predicted_annual_charges")) > F.lit(ADDITIVITY_TOLERANCE_USD)
    checks.update({
        "interval_lower > predicted_annual_charges": col("interval_lower") > col("predicted_annual_charges"),
        "predicted_annual_charges > interval_upper": col("predicted_annual_charges") > col("interval_upper"),
        "risk_score outside 0-100": (col("risk_score") < 0) | (col("risk_score") > 100),
        f"risk_category not one of {', '.join(categories)}": ~col("risk_category").isin(*categories),
        f"{IS_CRITICAL_RISK} != (risk_category = '{HIGH_RISK_CATEGORY}')":
            col(IS_CRITICAL_RISK) != (col("risk_category") == F.lit(HIGH_RISK_CATEGORY)),
        "requires_review != (review_reasons != '')": col("requires_review") != (col("review_reasons") != F.lit("")),
    })
    if min_predicted_charges is not None:
        checks[f"predicted_annual_charges below the floor {min_predicted_charges:g}"] = \
            col("predicted_annual_charges") < F.lit(float(min_predicted_charges))
    row = frame.agg(F.count(F.lit(1)).alias("_rows"), F.countDistinct(KEY).alias("_members"),
                    *[F.sum(F.coalesce(condition, F.lit(False)).cast("long")).alias(f"_{i}")
                      for i, condition in enumerate(checks.values())]).first()
    if not row["_rows"]:
        return ["no rows were scored"]
    for i, name in enumerate(checks):
        if row[f"_{i}"]:
            problems.append(f"{name}: {row[f'_{i}']} rows")
    if row["_members"] != row["_rows"]:
        problems.append(f"{row['_rows'] - row['_members']} duplicate {KEY} rows")
    return problems
