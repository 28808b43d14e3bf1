"""Monitoring's heavy lifting in Spark: a scored batch of any size -> a few thousand counts and sums.

Nothing here collects rows. ``value_counts`` reduces the current batch to one small table
in a single Spark job (``current_counts_frame``): one aggregation keyed by all the
columns with few distinct values at once (the categories as their index, age and
children as whole numbers: a few thousand combinations whatever the batch size), and one
per continuous column keyed by (rounded value, bin). The core (evaluation.py) reads all it
needs from the counts: counts per bin (PSI, JS distance, chi-square), the sorted
cumulative counts per distinct value (KS, Wasserstein), group shares and the volume. The
reference side is counted once, when the model is trained, over (at most 100k of) its
training rows by the numpy twins of the same expressions (``reference_counts``), and
logged with the model as counts per column, value and bin: MLflow holds no member rows.
A test holds the two implementations to identical counts. ``performance_sums`` joins a scored batch
with later labels and returns per-group sums, again a handful of rows. Both run unchanged
on a cluster; only their small results reach the driver.

Bins are computed from the exact value (a ``CASE`` over the reference deciles, the twin of
``statistics.assign_numeric_bins``), so PSI is exact. The per-value counts of continuous
columns round first (``evaluation.VALUE_DECIMALS``, ``floor(v * 10^d + 0.5) / 10^d`` on both
sides): bmi is stored with two decimals, so its KS and Wasserstein are exact; predictions
are bucketed to 10 USD, which bounds the table at ~7k values at any batch size. That moves
every prediction by at most 5 USD, so the Wasserstein distance changes by at most 5 USD
(4.5e-4 of a reference sd of ~11,000 USD) and the KS statistic by at most the share of
rows inside one 10-USD bucket (tests/test_monitoring.py measures both against scipy on
unrounded data: below 5 USD / sd and 1e-3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from healthcare_mlops.modeling.risk import HIGH_RISK_CATEGORY
from healthcare_mlops.monitoring import statistics as st
from healthcare_mlops.monitoring.evaluation import (ALL_GROUP, CATEGORICAL, COUNT_COLUMNS, CURRENT_SIDE,
                                                    FAIRNESS_GROUPS, NUMERIC, REFERENCE_SIDE, ColumnSpec)
from healthcare_mlops.monitoring.performance import SUM_COLUMNS

if TYPE_CHECKING:                      # pyspark is imported where it runs (the console imports no Spark)
    from pyspark.sql import Column, DataFrame

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


def rounded_sql(value_sql: str, decimals: int) -> str:
    """``floor(v * 10^d + 0.5) / 10^d``: the same IEEE arithmetic as ``rounded_values`` (numpy), so
    both sides of the comparison land on exactly the same grid."""
    scale = _double(10.0 ** int(decimals))
    return f"floor({value_sql} * {scale} + CAST('0.5' AS DOUBLE)) / {scale}"


def rounded_values(values: np.ndarray, decimals: int | None) -> np.ndarray:
    """The numpy twin of ``rounded_sql`` (None: the values as they are)."""
    if decimals is None:
        return values
    scale = 10.0 ** int(decimals)
    return np.floor(values * scale + 0.5) / scale


def exact_specs(specs: list[ColumnSpec]) -> list[ColumnSpec]:
    """Columns with few distinct values (categories, whole numbers): counted together, in one key."""
    return [s for s in specs if s.kind == CATEGORICAL or s.decimals is None]


def _source(spec: ColumnSpec) -> str:
    return "`" + spec.source.replace("`", "``") + "`"


def categorical_code_sql(spec: ColumnSpec, data_type: str = "string") -> str:
    """The category's index as ``categorical_bin_sql`` gives it, cheaper per row: a boolean column
    is tested as one, and a text column is compared as stored first (lower-casing only the
    rows that match no category as they are)."""
    column, categories = _source(spec), list(spec.categories)
    unseen = len(categories)
    if data_type == "boolean":
        code = {value: categories.index(value) if value in categories else unseen for value in ("true", "false")}
        return (f"CASE WHEN {column} IS NULL THEN {st.MISSING_BIN} WHEN {column} THEN {code['true']} "
                f"ELSE {code['false']} END")
    text = f"CAST({column} AS STRING)"
    as_stored = " ".join(f"WHEN {text} = {_text(c)} THEN {i}" for i, c in enumerate(categories))
    return (f"CASE WHEN {column} IS NULL THEN {st.MISSING_BIN} {as_stored} "
            f"ELSE {categorical_bin_sql(categorical_text_sql(column), categories)} END")


def _exact_code_sql(spec: ColumnSpec, data_type: str) -> str:
    """The exact value (numeric, NaN as null) or the category's index (categorical)."""
    if spec.kind == NUMERIC:
        value = f"CAST({_source(spec)} AS DOUBLE)"
        return f"CASE WHEN isnan({value}) THEN CAST(NULL AS DOUBLE) ELSE {value} END"
    return f"CAST({categorical_code_sql(spec, data_type)} AS DOUBLE)"


def current_counts_frame(current: DataFrame, specs: list[ColumnSpec]) -> DataFrame:
    """The batch's counts as one small Spark DataFrame ``part, k0 .. kK, count`` (not collected).

    One Spark job, a union of a few aggregations over the same rows (no row is replicated):
    part -1 groups by every exact column at once (age x children x smoker x region x sex x
    age band: a few thousand combinations at any batch size; k_i is column i's value or
    category index); part j groups a rounded numeric column by (rounded value k0, bin k1),
    the bin taken from the exact value.
    """
    from pyspark.sql import functions as F

    exact = exact_specs(specs)
    width = max(len(exact), 2)
    pad = lambda start: [F.lit(None).cast("double").alias(f"k{i}") for i in range(start, width)]  # noqa: E731
    types = {field.name: field.dataType.typeName() for field in current.schema.fields}
    keys = [F.expr(_exact_code_sql(spec, types.get(spec.source, "string"))).alias(f"k{i}")
            for i, spec in enumerate(exact)]
    parts = [current.groupBy(*keys).agg(F.count(F.lit(1)).alias("count"))
             .select(F.lit(-1).alias("part"), *[f"k{i}" for i in range(len(exact))], *pad(len(exact)), "count")]
    for index, spec in enumerate(specs):
        if spec in exact:
            continue
        value = f"CAST({_source(spec)} AS DOUBLE)"
        rounded = f"CASE WHEN isnan({value}) THEN CAST(NULL AS DOUBLE) ELSE {rounded_sql(value, spec.decimals)} END"
        parts.append(current.groupBy(F.expr(rounded).alias("k0"),
                                     F.expr(f"CAST({numeric_bin_sql(value, spec.edges)} AS DOUBLE)").alias("k1"))
                     .agg(F.count(F.lit(1)).alias("count"))
                     .select(F.lit(index).alias("part"), "k0", "k1", *pad(2), "count"))
    frame = parts[0]
    for part in parts[1:]:
        frame = frame.unionByName(part)
    return frame


def unpack_counts(packed: pd.DataFrame, specs: list[ColumnSpec], side: str) -> pd.DataFrame:
    """``current_counts_frame``'s rows as the long table of ``evaluation.COUNT_COLUMNS``."""
    exact = exact_specs(specs)
    tables = []
    combined = packed[packed["part"] == -1]
    for i, spec in enumerate(exact):
        grouped = combined.groupby(f"k{i}", dropna=False)["count"].sum().reset_index()
        codes = grouped[f"k{i}"].to_numpy(float)
        if spec.kind == NUMERIC:
            bins, nums = st.assign_numeric_bins(codes, spec.edges), codes
        else:
            bins, nums = np.where(np.isnan(codes), st.MISSING_BIN, codes).astype(int), np.full(len(codes), np.nan)
        tables.append(pd.DataFrame({"side": side, "column_name": spec.name, "num": nums, "cat": None,
                                    "bin": bins, "count": grouped["count"].to_numpy()}))
    for index, spec in enumerate(specs):
        if spec in exact:
            continue
        part = packed[packed["part"] == index]
        tables.append(pd.DataFrame({"side": side, "column_name": spec.name, "num": part["k0"].to_numpy(float),
                                    "cat": None, "bin": part["k1"].to_numpy(float).astype(int),
                                    "count": part["count"].to_numpy()}))
    return _long_table(tables)


def _long_table(tables: list[pd.DataFrame]) -> pd.DataFrame:
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COUNT_COLUMNS})
    counts = pd.concat(tables, ignore_index=True)
    counts["count"] = counts["count"].astype("int64")
    counts["bin"] = counts["bin"].astype("int64")
    return counts[list(COUNT_COLUMNS)]


def category_codes(values: pd.Series, categories) -> np.ndarray:
    """The numpy twin of ``categorical_code_sql``: category index, ``len(categories)`` unseen, -1 null."""
    index = {c: float(i) for i, c in enumerate(categories)}
    missing = values.isna().to_numpy()
    text = values.astype("string")
    mapped = text.map(index).astype(float).to_numpy()                  # as stored
    misses = np.isnan(mapped) & ~missing
    if misses.any():                                                     # then in lower case
        mapped[misses] = text[misses].str.lower().map(index).astype(float).to_numpy()
    return np.where(missing, st.MISSING_BIN, np.where(np.isnan(mapped), len(categories), mapped)).astype(int)


def reference_counts(sample: pd.DataFrame, specs: list[ColumnSpec]) -> pd.DataFrame:
    """The training rows' counts (at most 100k rows, on the driver), in the long table's form."""
    tables = []
    for spec in specs:
        column = sample[spec.source]
        if spec.kind == NUMERIC:
            values = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
            keys = pd.DataFrame({"num": rounded_values(values, spec.decimals),
                                 "bin": st.assign_numeric_bins(values, spec.edges)})
        else:
            keys = pd.DataFrame({"num": np.nan, "bin": category_codes(column, spec.categories)})
        grouped = keys.groupby(["num", "bin"], dropna=False).size().reset_index(name="count")
        tables.append(grouped.assign(side=REFERENCE_SIDE, column_name=spec.name, cat=None))
    return _long_table(tables)


def value_counts(current: DataFrame, reference: pd.DataFrame, specs: list[ColumnSpec]) -> pd.DataFrame:
    """Counts per (side, column, rounded value, bin): the batch's from Spark, the reference's as
    training counted them (``reference_counts``)."""
    packed = current_counts_frame(current, specs).toPandas()
    return _long_table([unpack_counts(packed, specs, CURRENT_SIDE), reference])


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
    from pyspark.sql import functions as F

    actual = labels.where(F.col(LABEL).isNotNull()).select(KEY, F.col(LABEL).cast("double").alias("actual"))
    return predictions.join(actual, KEY, "inner")


def performance_sums(predictions: DataFrame, labels: DataFrame, prediction_reference, actual_reference,
                     groups=FAIRNESS_GROUPS) -> pd.DataFrame:
    """Per group (and ``all``): n and the sums MAE, RMSE, R², calibration and risk-score MAE need."""
    from pyspark.sql import functions as F

    joined = labelled_predictions(predictions, labels)
    predicted = F.col("predicted_annual_charges").cast("double")
    actual = F.col("actual")
    error = predicted - actual
    per_row = joined.select(
        F.abs(error).alias("abs_error"), (error * error).alias("sq_error"),
        risk_error_column(predicted, actual, prediction_reference, actual_reference).alias("risk_abs_error"),
        predicted.alias("predicted"), actual.alias("actual"),
        (F.col("risk_category") == F.lit(HIGH_RISK_CATEGORY)).cast("int").alias("is_critical"),
        F.explode(F.array(
            F.struct(F.lit(ALL_GROUP).alias("group_column"), F.lit(ALL_GROUP).alias("group_value")),
            *[F.struct(F.lit(g).alias("group_column"), F.col(g).cast("string").alias("group_value"))
              for g in groups])).alias("g"))
    sums = (per_row.groupBy("g.group_column", "g.group_value")
            .agg(F.count(F.lit(1)).alias("n"), F.sum("abs_error").alias("sum_abs_error"),
                 F.sum("sq_error").alias("sum_sq_error"), F.sum("risk_abs_error").alias("sum_risk_abs_error"),
                 F.sum("predicted").alias("sum_predicted"), F.sum("actual").alias("sum_actual"),
                 F.sum(F.col("actual") * F.col("actual")).alias("sum_actual_sq"),
                 F.sum("is_critical").alias("n_critical"))
            .toPandas())
    if sums.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in ("group_column", "group_value", *SUM_COLUMNS)})
    return sums.fillna({c: 0 for c in SUM_COLUMNS})
