"""The PyTorch loop on its own: early stopping, class balancing, images."""

from __future__ import annotations

import numpy as np
import pytest

from kubeloop_trainer.errors import InvalidSpecError
from kubeloop_trainer.features import build_features
from kubeloop_trainer.hyperparameters import NetworkHyperparameters, network_hyperparameters
from kubeloop_trainer.model import Recipe
from kubeloop_trainer.splits import Part, split_rows, take
from kubeloop_trainer.torch_fit import balanced_class_weights
from kubeloop_trainer.torch_models import fit_torch
from tests.unit.trainer.builders import blobs

pytestmark = pytest.mark.unit


def test_early_stopping_ends_the_run_and_keeps_the_best_epoch() -> None:
    features = build_features(blobs(n_rows=120, seed=9), "label", "classification")
    data = take(features, split_rows(120, features.y, 0.25, 0.2, seed=0))
    recipe = Recipe(
        "mlp",
        "classification",
        4,
        3,
        {"epochs": 300, "learningRate": 0.05, "hiddenUnits": [32]},
        early_stopping_patience=3,
    )
    epochs: list[dict[str, float]] = []
    model = fit_torch(
        recipe, data.train, data.validation, on_epoch=lambda epoch, metrics: epochs.append(metrics)
    )
    history = model.history
    assert history.stopped_early and history.epochs_run < 300
    assert history.epochs_run == history.best_epoch + 3
    assert history.best_value == min(m["val_loss"] for m in epochs)


def test_balanced_class_weights_favour_the_rare_class() -> None:
    weights = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights == pytest.approx((4 / 9, 4 / 3, 0.0))


def test_network_hyperparameters_accept_both_spellings_and_refuse_unknown_names() -> None:
    assert network_hyperparameters({"hidden_units": "32,16", "learningRate": 0.1}).hidden_units == [32, 16]
    with pytest.raises(InvalidSpecError, match="bad hyperparameters"):
        network_hyperparameters({"hidden_layers": 3})
    assert NetworkHyperparameters(image_channels=3).image_shape(3 * 16) == (3, 4, 4)
    with pytest.raises(InvalidSpecError, match="not 1 channel"):
        NetworkHyperparameters().image_shape(10)


def test_class_balancing_raises_recall_of_the_rare_class() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.1).astype(np.int64)
    x = (rng.normal(0, 1, size=(400, 2)) + y[:, None] * 1.0).astype(np.float32)
    train, held = Part(x[:300], y[:300]), Part(x[300:], y[300:])

    def rare_recall(balanced: bool) -> float:
        recipe = Recipe(
            "mlp", "classification", 2, 2, {"epochs": 15}, class_balancing=balanced, early_stopping_patience=0
        )
        predicted = fit_torch(recipe, train, held).predict_output(held.x).argmax(axis=1)
        return float(np.mean(predicted[held.y == 1] == 1))

    assert rare_recall(True) > rare_recall(False)
