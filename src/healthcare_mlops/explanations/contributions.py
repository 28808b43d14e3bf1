"""Exact additive contributions of each model input to a member's predicted annual charges.

Per member: ``base + sum(contributions) = the model's raw prediction`` (to 1 USD, checked on
every call: a mismatch raises instead of being absorbed). The pyfunc then clips the raw
prediction at 0 and batch scoring raises it to ``min_predicted_charges``; that difference
is its own line, ``floor_adjustment`` ("minimum charge floor"), so
``base + contributions + floor_adjustment = the reported prediction``.

Contributions are computed on the model's encoded features (numeric features and one-hot
columns, after ``estimators.preprocessing``) and folded into the model inputs they are
computed from (``features.definitions.FEATURE_SOURCES``; a feature computed from two inputs
is shared equally between them).

- Linear model (scaler -> HuberRegressor): encoded feature j contributes
  ``w_j * (z_j - mean_j)``, ``w_j`` its coefficient in USD per unit and ``mean_j`` its mean
  over the training frame (the scaler's mean); base = the prediction at the training means
  = the mean training prediction. This is what shap's LinearExplainer gives with an
  independent masker, computed here with one matrix product.
- Tree models (random forest, gradient boosting, histogram gradient boosting): shap's
  TreeExplainer (path-dependent TreeSHAP, exact) on the fitted regressor; shap is imported
  only when a tree model is explained. A batch of rows is explained tree by tree over the
  rows' distinct split patterns (``tree_patterns.py``: the same values to rounding, several
  times faster). A log-link model (Poisson or gamma loss) predicts ``exp(margin)``, and
  TreeSHAP is exact on the margin: its values ``phi_j`` are turned into
  USD by one factor per member, ``(prediction - exp(base margin)) / sum(phi)``, so each
  input keeps its share and sign of the margin and the USD amounts add up exactly
  (base = ``exp(base margin)``).
- Any other regressor: ``ExplanationUnavailable``, never an approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from healthcare_mlops.errors import UserError
from healthcare_mlops.explanations.tree_patterns import pattern_pass_applies, pattern_shap_values
from healthcare_mlops.features.definitions import FEATURE_SOURCES, MODEL_INPUT_COLUMNS
# The explanation's columns are predictions-table columns (tables.py); re-exported here.
from healthcare_mlops.tables import (BASE_COLUMN, CONTRIBUTION_COLUMNS, CONTRIBUTION_PREFIX,  # noqa: F401
                                     EXPLANATION_COLUMNS, FLOOR_COLUMN, TOP_REASONS_COLUMN)


FLOOR_LABEL = "minimum charge floor"
OUTSIDE_COLUMN = "outside_training_range"          # real-time: the inputs outside the training range
ADDITIVITY_TOLERANCE_USD = 1.0
# The scoring request parameter that asks for the explanation: {"params": {"reasons": true}}.
REASONS_PARAM = "reasons"
LINEAR, TREE = "linear", "tree"
LOG_LINK_LOSSES = ("poisson", "gamma")
# Global importance at training: every training row for the linear model; TreeSHAP costs
# more per row, so tree models use a fixed sample of this many rows.
IMPORTANCE_SAMPLE_ROWS = 20_000


class ExplanationUnavailable(UserError):
    """The model cannot be explained exactly (its type, or inputs beyond the explained five)."""


def encoded_sources(encode) -> list[str]:
    """For each column the fitted ColumnTransformer outputs, the feature it encodes (one-hot: its column)."""
    sources = []
    for name, transformer, columns in encode.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        if hasattr(transformer, "categories_"):       # OneHotEncoder: one column per category
            for column, categories in zip(columns, transformer.categories_):
                sources.extend([column] * len(categories))
        else:                                         # passthrough (fitted: an identity transformer)
            sources.extend(columns)
    if len(sources) != len(encode.get_feature_names_out()):
        raise ExplanationUnavailable("the model's encoded columns cannot be traced to its inputs")
    return sources


def fold_matrix(sources: list[str], inputs: tuple) -> np.ndarray:
    """(encoded columns x inputs) weights: 1 for a feature of one input, 1/2 each for a feature of two."""
    fold = np.zeros((len(sources), len(inputs)))
    for row, source in enumerate(sources):
        owners = FEATURE_SOURCES.get(source, (source,))
        unknown = [o for o in owners if o not in inputs]
        if unknown:
            raise ExplanationUnavailable(f"the model uses {source}, computed from {', '.join(unknown)}, "
                                         f"which is not one of the explained inputs ({', '.join(inputs)})")
        for owner in owners:
            fold[row, inputs.index(owner)] += 1.0 / len(owners)
    return fold


@dataclass
class Explanation:
    """A batch's raw model predictions, the base value and each input's contribution (rows x inputs)."""

    inputs: tuple
    base: float
    contributions: np.ndarray
    raw: np.ndarray

    def columns(self, reported: np.ndarray) -> dict:
        """``EXPLANATION_COLUMNS`` as arrays, the floor line making them add up to ``reported``."""
        values = {f"{CONTRIBUTION_PREFIX}{name}": self.contributions[:, i] for i, name in enumerate(self.inputs)}
        return {BASE_COLUMN: np.full(len(self.raw), self.base), **values,
                FLOOR_COLUMN: np.asarray(reported, dtype=float) - self.raw}


@dataclass
class Explainer:
    """What explaining a fitted pipeline needs; pickled inside the pyfunc with the pipeline.

    Linear: ``weights`` (USD per unit of each encoded column), ``means`` (their training
    means) and ``base``. Trees: nothing beyond the fold and the link (the TreeExplainer is
    rebuilt from the fitted trees on first use and not pickled). ``training_range`` is the
    range of each input in training, for the "outside what the model was trained on" flag.
    """

    kind: str
    candidate: str
    inputs: tuple
    fold: np.ndarray
    base: float = float("nan")
    weights: np.ndarray | None = None
    means: np.ndarray | None = None
    log_link: bool = False
    training_range: object = None        # features.training_range.TrainingRange, set by training

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_tree", None)                      # rebuilt from the regressor on first use
        return state

    def _tree_explainer(self, regressor):
        tree = self.__dict__.get("_tree")
        if tree is None:
            import shap                               # only a tree model needs it (numba and all)

            tree = self.__dict__["_tree"] = shap.TreeExplainer(regressor)
        return tree

    def explain_encoded(self, regressor, encoded: np.ndarray) -> Explanation:
        """The explanation of the rows ``encoded`` (the pipeline's encoded features)."""
        raw = np.asarray(regressor.predict(encoded), dtype=float)
        if self.kind == LINEAR:
            base, per_column = self.base, (encoded - self.means) * self.weights
        else:
            base, per_column = self._tree_values(regressor, encoded)
        explanation = Explanation(self.inputs, float(base), per_column @ self.fold, raw)
        gap = np.abs(base + explanation.contributions.sum(axis=1) - raw)
        if gap.size and gap.max() > ADDITIVITY_TOLERANCE_USD:
            raise ExplanationUnavailable(f"the contributions of {self.candidate} miss its prediction by "
                                         f"{gap.max():.2f} USD: refusing an inexact explanation")
        return explanation

    def _tree_values(self, regressor, encoded: np.ndarray) -> tuple[float, np.ndarray]:
        tree = self._tree_explainer(regressor)
        if pattern_pass_applies(tree, len(encoded)):    # a batch: each tree once per split pattern
            phi = pattern_shap_values(tree, encoded)
        else:
            phi = np.asarray(tree.shap_values(encoded, check_additivity=False), dtype=float)
        margin_base = float(np.ravel(tree.expected_value)[0])
        if not self.log_link:
            return margin_base, phi
        base = float(np.exp(margin_base))
        total = phi.sum(axis=1)
        small = np.abs(total) < 1e-12
        # (exp(base margin + total) - exp(base margin)) / total, and its limit exp(base margin) at 0
        factor = np.where(small, base, base * np.expm1(total) / np.where(small, 1.0, total))
        return base, phi * factor[:, None]

    def explain(self, pipeline, inputs: pd.DataFrame) -> Explanation:
        """The explanation of model-input rows (typed as the input contract says)."""
        encoded = np.asarray(pipeline.named_steps["preprocess"].transform(inputs), dtype=float)
        return self.explain_encoded(pipeline.named_steps["regressor"], encoded)


def _linear_parts(regressor) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(weights, means, base) of a scaler -> linear-model pipeline, or None when it is not one."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(regressor, Pipeline) or len(regressor.steps) != 2:
        return None
    scale, linear = regressor.steps[0][1], regressor.steps[1][1]
    if not isinstance(scale, StandardScaler) or not hasattr(linear, "coef_"):
        return None
    weights = np.ravel(linear.coef_) / scale.scale_
    return weights, np.asarray(scale.mean_, dtype=float), float(np.ravel(linear.intercept_)[0])


def build_explainer(pipeline, candidate: str, inputs: tuple = MODEL_INPUT_COLUMNS) -> Explainer:
    """The explainer of a fitted ``estimators.make_pipeline`` model, or ExplanationUnavailable."""
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor

    encode = pipeline.named_steps["preprocess"].named_steps["encode"]
    regressor = pipeline.named_steps["regressor"]
    fold = fold_matrix(encoded_sources(encode), tuple(inputs))
    common = dict(candidate=candidate, inputs=tuple(inputs), fold=fold)
    linear = _linear_parts(regressor)
    if linear is not None:
        weights, means, base = linear
        return Explainer(kind=LINEAR, base=base, weights=weights, means=means, **common)
    if isinstance(regressor, (RandomForestRegressor, GradientBoostingRegressor, HistGradientBoostingRegressor)):
        return Explainer(kind=TREE, log_link=str(getattr(regressor, "loss", "")) in LOG_LINK_LOSSES, **common)
    raise ExplanationUnavailable(f"{candidate} ({type(regressor).__name__}) has no exact explanation: "
                                 "only the linear model and the tree ensembles are explained")


def mean_abs_contributions(explainer: Explainer, pipeline, inputs: pd.DataFrame, seed: int = 0) -> dict:
    """Global importance: each input's mean |contribution| in USD over ``inputs`` (tree models: a sample)."""
    if explainer.kind == TREE and len(inputs) > IMPORTANCE_SAMPLE_ROWS:
        inputs = inputs.sample(n=IMPORTANCE_SAMPLE_ROWS, random_state=seed)
    explanation = explainer.explain(pipeline, inputs)
    means = np.abs(explanation.contributions).mean(axis=0)
    return {name: float(value) for name, value in zip(explainer.inputs, means)}


def normalised(importances: dict) -> dict:
    """Importances scaled to sum to 1 (equal shares when they are all 0)."""
    total = sum(max(float(v), 0.0) for v in importances.values())
    if total <= 0:
        return {k: 1.0 / len(importances) for k in importances}
    return {k: max(float(v), 0.0) / total for k, v in importances.items()}
