"""Every feature formula, as data plus one pandas implementation.

The Spark feature job (``healthcare_mlops.spark.features``) builds its column
expressions from the same tables below, and the model computes the engineered
features inside its scikit-learn pipeline with ``engineer_features``; a test keeps the
two in agreement.

| feature | formula |
|---|---|
| age | age in whole years at the as-of date; 90 for anyone older than 89 (Safe Harbor) |
| age_band | ``18-29``, ``30-39``, ``40-49``, ``50-59``, ``60+`` |
| age_risk_score | 1-5, the index of the age band |
| bmi | body-mass index as measured |
| bmi_category | < 18.5 underweight, 18.5-24.9 normal, 25-29.9 overweight, 30-34.9 obese_1, 35-39.9 obese_2, >= 40 obese_3 |
| smoker | 1 for a tobacco user, else 0 |
| smoker_obese | smoker x (bmi >= 30): the interaction that drives the highest charges |
| children | dependants covered |
| family_size_category | ``individual`` (no children), ``small`` (1-2), ``large`` (3+) |
| region | northeast, northwest, southeast, southwest |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from healthcare_mlops.tables import MODEL_INPUT_COLUMNS, ML_INSURANCE_FEATURES_SPEC  # noqa: F401  (re-exported)

# Safe Harbor: ages over 89 are reported as one group, 90.
MAX_REPORTED_AGE = 90

# (lower bound inclusive, label); a band runs up to the next bound.
AGE_BANDS = ((18, "18-29"), (30, "30-39"), (40, "40-49"), (50, "50-59"), (60, "60+"))
BMI_CATEGORIES = ((0.0, "underweight"), (18.5, "normal"), (25.0, "overweight"),
                  (30.0, "obese_1"), (35.0, "obese_2"), (40.0, "obese_3"))
OBESE_BMI = 30.0
FAMILY_SIZE_CATEGORIES = ((0, "individual"), (1, "small"), (3, "large"))

ENGINEERED_NUMERIC = ("age_risk_score", "smoker_obese")
ENGINEERED_CATEGORICAL = ("bmi_category", "family_size_category")
# The model input(s) each engineered feature is computed from (the formulas below). A
# member's explanation folds a feature's contribution back into these inputs, shared
# equally when there are two (``explanations.contributions``); a model input is its own source.
FEATURE_SOURCES = {
    "age_risk_score": ("age",),
    "smoker_obese": ("smoker", "bmi"),
    "bmi_category": ("bmi",),
    "family_size_category": ("children",),
}

# ml_insurance_features: columns and types in tables.py.
FEATURE_SCHEMA_DDL = ML_INSURANCE_FEATURES_SPEC.ddl
FEATURE_COLUMNS = ML_INSURANCE_FEATURES_SPEC.names
LABEL_COLUMN = "annual_charges"


@dataclass(frozen=True)
class GroupColumn:
    """A column members are grouped by for fairness and demographic-shift reporting."""

    name: str
    # ``sex`` is protected (never a model input; hard checks, docs/definitions.md); the others are
    # rating factors the ACA allows (age, tobacco, family size, geography): reported and warned on
    protected: bool = False
    # on the predictions table, so monitoring sees it per window (demographic shift)
    scored: bool = False
    # in monitoring's per-window group metrics (ml_fairness_metrics); every group is judged by
    # governance on the out-of-fold predictions of training
    window_fairness: bool = False


# The one registry of group columns (governance, monitoring, training and the console read it).
GROUPS = (
    GroupColumn("sex", protected=True, scored=True, window_fairness=True),
    GroupColumn("region", scored=True, window_fairness=True),
    GroupColumn("age_band", scored=True, window_fairness=True),
    GroupColumn("smoker", scored=True),
    GroupColumn("family_size_category"),
)
PROTECTED_ATTRIBUTES = tuple(g.name for g in GROUPS if g.protected)
RATING_FACTORS = tuple(g.name for g in GROUPS if not g.protected)
# governance fairness: every group
FAIRNESS_GROUP_COLUMNS = tuple(g.name for g in GROUPS)
# demographic shift: the groups on the predictions table
GROUP_COLUMNS = tuple(g.name for g in GROUPS if g.scored)
WINDOW_FAIRNESS_GROUPS = tuple(g.name for g in GROUPS if g.window_fairness)
SCORED_RATING_FACTORS = tuple(g for g in GROUP_COLUMNS if g not in PROTECTED_ATTRIBUTES)
# the group columns a scored row carries beside the model inputs
CARRIED_GROUP_COLUMNS = tuple(g for g in GROUP_COLUMNS if g not in MODEL_INPUT_COLUMNS)

# ZIP3 prefixes with 20,000 people or fewer (Census 2000), reported as 000 under Safe Harbor.
RESTRICTED_ZIP3 = frozenset({"036", "059", "063", "102", "203", "556", "692", "790", "821",
                             "823", "830", "831", "878", "879", "884", "890", "893"})


def band(values, bands) -> np.ndarray:
    """Label of the band each value falls in (bands sorted by lower bound)."""
    bounds = np.array([lower for lower, _ in bands], dtype=float)
    labels = np.array([label for _, label in bands], dtype=object)
    index = np.searchsorted(bounds, np.asarray(values, dtype=float), side="right") - 1
    return labels[np.clip(index, 0, len(labels) - 1)]


def age_risk_score(age) -> np.ndarray:
    """1-5: the position of the member's age band."""
    bounds = np.array([lower for lower, _ in AGE_BANDS], dtype=float)
    index = np.searchsorted(bounds, np.asarray(age, dtype=float), side="right")
    return np.clip(index, 1, len(AGE_BANDS)).astype("int64")


def deidentified_zip3(zip_code: str | None) -> str | None:
    """The first three digits of a ZIP code, or 000 for a restricted prefix."""
    if zip_code is None or len(str(zip_code)) < 3:
        return None
    prefix = str(zip_code)[:3]
    return "000" if prefix in RESTRICTED_ZIP3 else prefix


def engineer_features(inputs: pd.DataFrame, extra: tuple = ()) -> pd.DataFrame:
    """Model inputs plus the engineered features, computed the same way as the feature job.

    ``extra`` names further input columns passed through as text (see estimators.preprocessing).
    """
    age = np.minimum(inputs["age"].astype(float), MAX_REPORTED_AGE)
    bmi = inputs["bmi"].astype(float)
    smoker = inputs["smoker"].astype(float)
    children = inputs["children"].astype(float)
    return pd.DataFrame({
        "age": age,
        "bmi": bmi,
        "children": children,
        "smoker": smoker,
        "region": inputs["region"].astype(str),
        "age_risk_score": age_risk_score(age).astype(float),
        "smoker_obese": (smoker * (bmi >= OBESE_BMI)).astype(float),
        "bmi_category": band(bmi, BMI_CATEGORIES),
        "family_size_category": band(children, FAMILY_SIZE_CATEGORIES),
        **{column: inputs[column].astype(str) for column in extra},
    }, index=inputs.index)
