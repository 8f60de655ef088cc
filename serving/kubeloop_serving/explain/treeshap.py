"""Exact interventional TreeSHAP over a parsed ONNX tree ensemble, vectorised over leaves and background.

For a foreground row x and a background row z, the model evaluated on a hybrid row (features in S
from x, the rest from z) reaches leaf l exactly when, for every feature on l's path, the row whose
value it takes follows all of l's splits on that feature. Per leaf this splits the path's features
into A (only x follows them), B (only z does), both (irrelevant) and neither (the leaf is never
reached). Leaf l then contributes v_l * 1[A <= S, B and S disjoint], a game whose Shapley values are
known in closed form: (|A|-1)! |B|! / (|A|+|B|)! for a feature in A, minus |A)! (|B|-1)! / (|A|+|B|)!
for one in B. Summing over leaves and averaging over background rows gives the interventional SHAP
values of Janzing et al. / shap's ``feature_perturbation="interventional"``, in the ensemble's raw
score space (before ``post_transform``), and they add up to raw(x) - mean raw(background).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kubeloop_serving.explain.errors import ExplainerUnavailableError
from kubeloop_serving.explain.trees import FloatArray, TreeEnsemble

#: Slots per leaf are bits of one uint64 mask.
MAX_DEPTH = 64


def shapley_weights(depth: int) -> tuple[FloatArray, FloatArray]:
    """Tables indexed [|A|, |B|]: a feature's weight when in A, and when in B (0 where undefined)."""
    inside = np.zeros((depth + 1, depth + 1))
    outside = np.zeros((depth + 1, depth + 1))
    for a in range(depth + 1):
        for b in range(depth + 1 - a):
            total = math.factorial(a + b)
            if a:
                inside[a, b] = math.factorial(a - 1) * math.factorial(b) / total
            if b:
                outside[a, b] = math.factorial(a) * math.factorial(b - 1) / total
    return inside, outside


def failure_masks(ensemble: TreeEnsemble, x: npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    """[rows, leaves]: bit j set where the row leaves the leaf's path at slot j."""
    bits = np.left_shift(np.uint64(1), np.arange(ensemble.paths.depth, dtype=np.uint64))
    failed = ensemble.slot_failures(x)
    masks: npt.NDArray[np.uint64] = np.bitwise_or.reduce(np.where(failed, bits, np.uint64(0)), axis=2)
    return masks


@dataclass(frozen=True)
class TreeShap:
    """An ensemble and its background sample, precomputed once; ``explain`` per request.

    Slot patterns are bit masks, so a (row, background row, leaf) triple costs a few integer
    operations, and only the triples whose leaf some hybrid reaches are expanded slot by slot.
    """

    ensemble: TreeEnsemble
    background_masks: npt.NDArray[np.uint64]  # [background rows, leaves]
    expected_value: FloatArray  # [outputs]: mean raw score over the background

    @classmethod
    def fit(cls, ensemble: TreeEnsemble, background: npt.NDArray[Any]) -> TreeShap:
        if ensemble.paths.depth > MAX_DEPTH:
            raise ExplainerUnavailableError(
                f"a leaf's path splits on {ensemble.paths.depth} features; TreeSHAP here handles {MAX_DEPTH}"
            )
        masks = failure_masks(ensemble, background)
        reached = masks == 0
        expected = ensemble.base_values + reached.mean(axis=0) @ ensemble.leaf_values
        return cls(ensemble, masks, expected)

    def explain(self, x: npt.NDArray[Any]) -> FloatArray:
        """[rows, features, outputs] SHAP values of ``x`` in raw score space."""
        ensemble = self.ensemble
        depth = ensemble.paths.depth
        inside, outside = shapley_weights(depth)
        slot_feature = ensemble.paths.slot_feature.reshape(-1)
        used = slot_feature >= 0
        features = np.where(used, slot_feature, ensemble.n_features)
        outputs = ensemble.leaf_values.shape[1]
        values = np.zeros((x.shape[0], ensemble.n_features, outputs))
        for row, mask in enumerate(failure_masks(ensemble, x)):
            coefficients = self._slot_coefficients(mask, inside, outside).reshape(-1)
            for k in range(outputs):
                weights = coefficients * np.repeat(ensemble.leaf_values[:, k], depth)
                values[row, :, k] = np.bincount(features, weights=weights, minlength=ensemble.n_features + 1)[
                    : ensemble.n_features
                ]
        return values

    def _slot_coefficients(
        self, x_mask: npt.NDArray[np.uint64], inside: FloatArray, outside: FloatArray
    ) -> FloatArray:
        """[leaves, depth]: each slot's Shapley weight for one foreground row, averaged over background."""
        background = self.background_masks
        leaves, depth = x_mask.shape[0], inside.shape[0] - 1
        z_index, leaf = np.nonzero((background & x_mask[None, :]) == 0)  # pairs some hybrid reaches
        only_x = background[z_index, leaf] & ~x_mask[leaf]  # slots x follows and z leaves: A
        a = np.bitwise_count(only_x).astype(np.int64)
        x_failed = np.bitwise_count(x_mask).astype(np.int64)
        b = x_failed[leaf]
        shifts = np.arange(depth, dtype=np.uint64)
        in_a_bits = ((only_x[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.float64)
        slots = leaf[:, None] * depth + np.arange(depth)[None, :]
        in_a = np.bincount(
            slots.reshape(-1),
            weights=(inside[a, b][:, None] * in_a_bits).reshape(-1),
            minlength=leaves * depth,
        ).reshape(leaves, depth)
        in_b = np.bincount(leaf, weights=outside[a, b], minlength=leaves)
        x_bits = ((x_mask[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.float64)
        coefficients: FloatArray = (in_a - x_bits * in_b[:, None]) / background.shape[0]
        return coefficients
