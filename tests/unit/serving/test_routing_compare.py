"""Shadow agreement is agreement of predictions: a classifier's labels, not its scores."""

from __future__ import annotations

import numpy as np
import pytest

from kubeloop_serving.routing.compare import rows_agree

pytestmark = pytest.mark.unit


def test_classifiers_agree_on_labels_whatever_their_scores() -> None:
    stable = {
        "label": np.array([0, 1, 1, 0]),
        "probabilities": np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4]], np.float32),
    }
    shadow = {
        "label": np.array([0, 1, 0, 0]),
        "probabilities": np.array([[0.7, 0.3], [0.1, 0.9], [0.55, 0.45], [0.51, 0.49]], np.float32),
    }
    assert rows_agree(stable, shadow).tolist() == [True, True, False, True]


def test_float_outputs_alone_are_compared_with_isclose() -> None:
    stable = {"y": np.array([1.0, 2.0, 3.0])}
    assert rows_agree(stable, {"y": np.array([1.0, 2.0 + 1e-9, 3.1])}).tolist() == [True, True, False]


def test_a_label_of_another_shape_disagrees_on_every_row() -> None:
    stable = {"label": np.array([0, 1, 1])}
    assert rows_agree(stable, {"label": np.array([0, 1])}).tolist() == [False, False, False]
