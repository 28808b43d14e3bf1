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

import numpy as np
import pandas as pd

# Safe Harbor: ages over 89 are reported as one group, 90.
MAX_REPORTED_AGE = 90

# (lower bound inclusive, label); a band runs up to the next bound.
AGE_BANDS = ((18, "18-29"), (30, "30-39"), (40, "40-49"), (50, "50-59"), (60, "60+"))
BMI_CATEGORIES = ((0.0, "underweight"), (18.5, "normal"), (25.0, "overweight"),
                  (30.0, "obese_1"), (35.0, "obese_2"), (40.0, "obese_3"))
OBESE_BMI = 30.0
FAMILY_SIZE_CATEGORIES = ((0, "individual"), (1, "small"), (3, "large"))

# The model's inputs: the ACA's allowed rating factors (age, tobacco, family size,
# geography) and bmi. ``sex`` is kept in the features table for fairness reporting
# but is never a model input.
MODEL_INPUT_COLUMNS = ("age", "bmi", "children", "smoker", "region")
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

# ml_insurance_features: one row per member delivered in the as-of date's load, keyed by
# (patient_natural_key, as_of_date). No names, SSN, member ids, full ZIP or dates finer
# than a year; ``sex`` and ``zip3`` are kept for fairness and geography reporting only.
FEATURE_SCHEMA_DDL = ", ".join([
    "patient_natural_key STRING",
    "as_of_date DATE",
    "age INT",
    "age_band STRING",
    "age_risk_score INT",
    "bmi DOUBLE",
    "bmi_category STRING",
    "smoker BOOLEAN",
    "smoker_obese INT",
    "children INT",
    "family_size_category STRING",
    "region STRING",
    "sex STRING",
    "zip3 STRING",
    "annual_charges DOUBLE",
    "scd_version INT",
])
FEATURE_COLUMNS = tuple(part.split()[0] for part in FEATURE_SCHEMA_DDL.split(", "))
LABEL_COLUMN = "annual_charges"

# Group columns for fairness and demographic-shift reporting.
GROUP_COLUMNS = ("sex", "region", "age_band", "smoker")
# Governance fairness (docs/definitions.md): ``sex`` is protected (never an input, hard
# checks); the rest are rating factors the ACA allows (reported and warned on, never hard).
PROTECTED_ATTRIBUTES = ("sex",)
RATING_FACTORS = ("age_band", "region", "smoker", "family_size_category")
FAIRNESS_GROUP_COLUMNS = (*PROTECTED_ATTRIBUTES, *RATING_FACTORS)

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
