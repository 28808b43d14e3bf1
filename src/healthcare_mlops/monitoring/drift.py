"""Monitoring's heavy lifting in Spark: a scored batch of any size -> a few hundred counts and sums.

Nothing here collects rows. ``value_counts`` turns the current batch and the reference
sample into one small table in a single aggregation: for every monitored column, the
count of rows per (rounded value, bin) on each side. From it the core (evaluation.py)
reads everything it needs: counts per bin (PSI, JS distance, chi-square), the sorted
cumulative counts per distinct value (KS, Wasserstein), group shares and the volume.
``performance_sums`` joins a scored batch with later labels and returns per-group sums
(errors, risk-score errors, predicted and actual totals), again a handful of rows. Both
run unchanged on a cluster; only their small results reach the driver.

Bins are computed in Spark from the exact value (a ``CASE`` over the reference deciles,
the twin of ``statistics.assign_numeric_bins``), so PSI is exact. The per-value counts
round first (``evaluation.VALUE_DECIMALS``): age and children are whole numbers and bmi
is stored with two decimals, so their KS and Wasserstein are exact; predictions are
bucketed to 1 USD, which keeps the table at most ~70k rows per side at any batch size.
The approximation moves every prediction by at most 0.5 USD, so the Wasserstein distance
changes by at most 0.5 USD (5e-5 of a reference sd of ~11,000 USD) and the KS statistic
by at most the share of rows inside one 1-USD bucket (tests/test_monitoring.py measures
both against scipy on unrounded data: below 1e-4 and 1e-3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from healthcare_mlops.monitoring import statistics as st
from healthcare_mlops.monitoring.evaluation import (ALL_GROUP, CATEGORICAL, COUNT_COLUMNS, CURRENT_SIDE,
                                                    FAIRNESS_GROUPS, NUMERIC, REFERENCE_SIDE, SUM_COLUMNS,
                                                    ColumnSpec)

KEY = "patient_natural_key"
LABEL = "annual_charges"


def _double(value: float) -> str:
    """An exact double literal (the shortest repr round-trips, and so does Java's parser)."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _text(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def numeric_bin_sql(value_sql: str, edges) -> str:
    """The bin index of a numeric value: 0 for (-inf, e1], ..., len(edges) above the last edge; -1 for null/NaN."""
    branches = " ".join(f"WHEN {value_sql} <= {_double(edge)} THEN {index}" for index, edge in enumerate(edges))
    return f"CASE WHEN {value_sql} IS NULL OR isnan({value_sql}) THEN {st.MISSING_BIN} {branches} ELSE {len(edges)} END"


def categorical_text_sql(column_sql: str) -> str:
    """A categorical value as the reference stores it: text, lower case (booleans: true / false)."""
    return f"lower(CAST({column_sql} AS STRING))"


def categorical_bin_sql(text_sql: str, categories) -> str:
    """The index of the reference category, ``len(categories)`` for an unseen value, -1 for null."""
    branches = " ".join(f"WHEN {text_sql} = {_text(c)} THEN {index}" for index, c in enumerate(categories))
    return f"CASE WHEN {text_sql} IS NULL THEN {st.MISSING_BIN} {branches} ELSE {len(categories)} END"


def item_sql(spec: ColumnSpec) -> str:
    """``named_struct(column_name, num, cat, bin)`` of one monitored column, as one SQL expression
    (built as text: one expression per column instead of hundreds of ``Column`` calls)."""
    source = "`" + spec.source.replace("`", "``") + "`"
    if spec.kind == NUMERIC:
        value = f"CAST({source} AS DOUBLE)"
        rounded = value if spec.decimals is None else f"round({value}, {int(spec.decimals)})"
        num = f"CASE WHEN isnan({value}) THEN CAST(NULL AS DOUBLE) ELSE {rounded} END"
        cat, bin_ = "CAST(NULL AS STRING)", numeric_bin_sql(value, spec.edges)
    elif spec.kind == CATEGORICAL:
        text = categorical_text_sql(source)
        num, cat, bin_ = "CAST(NULL AS DOUBLE)", text, categorical_bin_sql(text, spec.categories)
    else:
        raise ValueError(f"unknown column kind '{spec.kind}'")
    return (f"named_struct('column_name', {_text(spec.name)}, 'num', {num}, 'cat', {cat}, "
            f"'bin', CAST({bin_} AS INT))")


def exploded_values(frame: DataFrame, specs: list[ColumnSpec], side: str) -> DataFrame:
    """One row per (row, monitored column): side, column_name, num, cat, bin."""
    items = ", ".join(item_sql(spec) for spec in specs)
    return (frame.select(F.lit(side).alias("side"), F.expr(f"explode(array({items}))").alias("v"))
            .select("side", "v.column_name", "v.num", "v.cat", "v.bin"))


def value_counts_frame(current: DataFrame, reference: DataFrame, specs: list[ColumnSpec]) -> DataFrame:
    """The Spark aggregation behind ``value_counts`` (not collected)."""
    both = exploded_values(current, specs, CURRENT_SIDE).unionByName(exploded_values(reference, specs, REFERENCE_SIDE))
    return both.groupBy("side", "column_name", "num", "cat", "bin").agg(F.count(F.lit(1)).alias("count"))


def value_counts(current: DataFrame, reference: DataFrame, specs: list[ColumnSpec]) -> pd.DataFrame:
    """Counts per (side, column, rounded value, bin) of both frames: the only thing collected."""
    counts = value_counts_frame(current, reference, specs).toPandas()
    if counts.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COUNT_COLUMNS})
    counts["count"] = counts["count"].astype("int64")
    counts["bin"] = counts["bin"].astype("int64")
    return counts[list(COUNT_COLUMNS)]


def risk_error_column(predicted: Column, actual: Column, prediction_reference, actual_reference) -> Column:
    """|score(predicted) - score(actual)|, each through its own reference quantiles (a pandas UDF)."""
    from pyspark.sql.functions import pandas_udf

    prediction_quantiles = np.asarray(prediction_reference, dtype=float)
    actual_quantiles = np.asarray(actual_reference, dtype=float)

    @pandas_udf("double")
    def risk_abs_error(p: pd.Series, a: pd.Series) -> pd.Series:
        from healthcare_mlops.modeling.risk import risk_score

        return pd.Series(np.abs(risk_score(p.to_numpy(float), prediction_quantiles)
                                - risk_score(a.to_numpy(float), actual_quantiles)))

    return risk_abs_error(predicted, actual)


def labelled_predictions(predictions: DataFrame, labels: DataFrame) -> DataFrame:
    """Scored rows joined with the members' actual charges (rows without a label dropped)."""
    actual = labels.where(F.col(LABEL).isNotNull()).select(KEY, F.col(LABEL).cast("double").alias("actual"))
    return predictions.join(actual, KEY, "inner")


def performance_sums(predictions: DataFrame, labels: DataFrame, prediction_reference, actual_reference,
                     groups=FAIRNESS_GROUPS) -> pd.DataFrame:
    """Per group (and ``all``): n and the sums MAE, RMSE, R², calibration and risk-score MAE need."""
    joined = labelled_predictions(predictions, labels)
    predicted = F.col("predicted_annual_charges").cast("double")
    actual = F.col("actual")
    error = predicted - actual
    per_row = joined.select(
        F.abs(error).alias("abs_error"), (error * error).alias("sq_error"),
        risk_error_column(predicted, actual, prediction_reference, actual_reference).alias("risk_abs_error"),
        predicted.alias("predicted"), actual.alias("actual"),
        (F.col("risk_category") == F.lit("critical")).cast("int").alias("critical"),
        F.explode(F.array(
            F.struct(F.lit(ALL_GROUP).alias("group_column"), F.lit(ALL_GROUP).alias("group_value")),
            *[F.struct(F.lit(g).alias("group_column"), F.col(g).cast("string").alias("group_value"))
              for g in groups])).alias("g"))
    sums = (per_row.groupBy("g.group_column", "g.group_value")
            .agg(F.count(F.lit(1)).alias("n"), F.sum("abs_error").alias("sum_abs_error"),
                 F.sum("sq_error").alias("sum_sq_error"), F.sum("risk_abs_error").alias("sum_risk_abs_error"),
                 F.sum("predicted").alias("sum_predicted"), F.sum("actual").alias("sum_actual"),
                 F.sum(F.col("actual") * F.col("actual")).alias("sum_actual_sq"),
                 F.sum("critical").alias("n_critical"))
            .toPandas())
    if sums.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in ("group_column", "group_value", *SUM_COLUMNS)})
    return sums.fillna({c: 0 for c in SUM_COLUMNS})
