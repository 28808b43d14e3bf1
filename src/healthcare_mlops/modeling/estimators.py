"""Candidate regressors, each one scikit-learn Pipeline with its preprocessing inside.

The pipeline takes the raw model inputs (age, bmi, children, smoker, region) and
computes the engineered features itself, so batch scoring, real-time scoring and
training all feed it the same five fields.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import HuberRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from healthcare_mlops.features.definitions import ENGINEERED_CATEGORICAL, ENGINEERED_NUMERIC, engineer_features

NUMERIC = ("age", "bmi", "children", "smoker", *ENGINEERED_NUMERIC)
CATEGORICAL = ("region", *ENGINEERED_CATEGORICAL)


def preprocessing(extra_categorical: tuple = ()) -> Pipeline:
    """Engineered features, then one-hot categories. ``extra_categorical`` inputs beyond the
    allowed rating factors exist only so that governance can be shown refusing such a model."""
    encode = ColumnTransformer([
        ("numeric", "passthrough", list(NUMERIC)),
        ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
         list(CATEGORICAL) + list(extra_categorical)),
    ])
    engineer = FunctionTransformer(engineer_features, kw_args={"extra": tuple(extra_categorical)})
    return Pipeline([("engineer", engineer), ("encode", encode)])


def _random_forest(seed: int):
    # One job: a parallel forest adds its trees' predictions in whichever order the threads
    # finish, so its predictions differ in the last bits from run to run.
    return RandomForestRegressor(n_estimators=120, max_depth=10, min_samples_leaf=5, n_jobs=1,
                                 random_state=seed)


def _gradient_boosting(seed: int):
    # Huber loss: squared near the fit, absolute in the right tail of charges.
    return GradientBoostingRegressor(loss="huber", alpha=0.95, n_estimators=200, learning_rate=0.08,
                                     max_depth=3, subsample=0.8, random_state=seed)


def _hist_gradient_boosting(seed: int):
    # Poisson loss: a log link suits positive, right-skewed charges and keeps the mean.
    return HistGradientBoostingRegressor(loss="poisson", max_iter=300, learning_rate=0.05,
                                         max_leaf_nodes=15, min_samples_leaf=20, random_state=seed)


def _hist_gradient_boosting_absolute(seed: int):
    # Absolute-error loss: predicts the conditional median, so the unexplained right tail
    # does not pull every prediction up; lowest MAE on right-skewed charges. Its overall
    # level sits below the mean (a performance matter, reported by governance as such).
    return HistGradientBoostingRegressor(loss="absolute_error", max_iter=300, learning_rate=0.05,
                                         max_leaf_nodes=15, min_samples_leaf=20, random_state=seed)


def _linear_huber(seed: int):
    # Huber loss on the engineered features (smoker x obesity, age band, family size):
    # charges are close to additive in them, and the loss is absolute in the right tail.
    # The scaler lets L-BFGS converge; ``seed`` is unused (the fit is deterministic).
    return Pipeline([("scale", StandardScaler()),
                     ("huber", HuberRegressor(epsilon=1.35, alpha=0.0, max_iter=2000))])


CANDIDATES = {
    "random_forest": _random_forest,
    "gradient_boosting_huber": _gradient_boosting,
    "hist_gradient_boosting_poisson": _hist_gradient_boosting,
    "hist_gradient_boosting_absolute_error": _hist_gradient_boosting_absolute,
    "linear_huber": _linear_huber,
}


def make_pipeline(candidate: str, seed: int, extra_categorical: tuple = ()) -> Pipeline:
    """The full model for one candidate: preprocessing, then the regressor."""
    return Pipeline([("preprocess", preprocessing(extra_categorical)),
                     ("regressor", CANDIDATES[candidate](seed))])

