"""scikit-learn algorithms: logistic regression, random forest, gradient boosting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_sample_weight

from kubeloop_trainer.errors import InvalidSpecError
from kubeloop_trainer.features import FloatMatrix
from kubeloop_trainer.hyperparameters import coerce_scalar
from kubeloop_trainer.model import Recipe
from kubeloop_trainer.splits import Part


def new_estimator(recipe: Recipe) -> Any:
    """An unfitted estimator for the recipe, with its hyperparameters applied."""
    classification = recipe.task == "classification"
    balanced = "balanced" if recipe.class_balancing and classification else None
    if recipe.algorithm == "logistic_regression":
        if not classification:
            raise InvalidSpecError(
                "logistic_regression is a classifier; for regression use random_forest or mlp"
            )
        estimator: Any = LogisticRegression(max_iter=1000, class_weight=balanced, random_state=recipe.seed)
    elif recipe.algorithm == "random_forest":
        estimator = (
            RandomForestClassifier(class_weight=balanced, random_state=recipe.seed)
            if classification
            else RandomForestRegressor(random_state=recipe.seed)
        )
    elif recipe.algorithm == "gradient_boosting":
        estimator = (
            GradientBoostingClassifier(random_state=recipe.seed)
            if classification
            else GradientBoostingRegressor(random_state=recipe.seed)
        )
    else:
        raise InvalidSpecError(f"{recipe.algorithm} is not a scikit-learn algorithm")
    hyperparameters = {name: coerce_scalar(value) for name, value in recipe.hyperparameters.items()}
    try:
        return estimator.set_params(**hyperparameters)
    except ValueError as error:
        raise InvalidSpecError(f"bad hyperparameters for {recipe.algorithm}: {error}") from error


def balanced_sample_weight(recipe: Recipe, estimator: Any, y: npt.NDArray[Any]) -> npt.NDArray[Any] | None:
    """Per-row weights for class balancing where the estimator has no ``class_weight`` of its own."""
    if (
        not recipe.class_balancing
        or recipe.task != "classification"
        or "class_weight" in estimator.get_params()
    ):
        return None
    weights: npt.NDArray[Any] = compute_sample_weight("balanced", y)
    return weights


@dataclass
class SklearnModel:
    estimator: Any
    classification: bool
    n_features: int

    @property
    def framework(self) -> str:
        return "sklearn"

    def predict_output(self, x: FloatMatrix) -> npt.NDArray[Any]:
        if self.classification:
            probabilities: npt.NDArray[Any] = self.estimator.predict_proba(x)
            return probabilities
        values: npt.NDArray[Any] = self.estimator.predict(x)
        return values

    def to_onnx(self) -> Any:
        options = {id(self.estimator): {"zipmap": False}} if self.classification else None
        return convert_sklearn(
            self.estimator,
            initial_types=[("input", FloatTensorType([None, self.n_features]))],
            options=options,
        )

    def effective_params(self) -> dict[str, Any]:
        return {name: value for name, value in self.estimator.get_params().items() if _is_loggable(value)}

    def checkpoint(self) -> bytes | None:
        return None


def _is_loggable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def fit_sklearn(recipe: Recipe, train: Part) -> SklearnModel:
    """Fit on float32 features: trees then split on the same values ONNX's float32 inputs give."""
    estimator = new_estimator(recipe)
    weights = balanced_sample_weight(recipe, estimator, train.y)
    x = np.asarray(train.x, dtype=np.float32)
    if weights is None:
        estimator.fit(x, train.y)
    else:
        estimator.fit(x, train.y, sample_weight=weights)
    return SklearnModel(
        estimator=estimator, classification=recipe.task == "classification", n_features=x.shape[1]
    )
