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
#: Foreground rows explained together: bounds the [rows, background patterns] temporaries.
CHUNK_ELEMENTS = 1 << 18


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

    Slot patterns are bit masks, so a (row, background pattern, leaf) triple costs a few integer
    operations, and only the triples whose leaf some hybrid reaches are expanded slot by slot.
    Background rows that leave a leaf's path at the same slots are one pattern with a weight (their
    share of the background): shallow trees have few patterns per leaf however large the sample.
    """

    ensemble: TreeEnsemble
    pattern_leaf: npt.NDArray[np.int64]  # [patterns]: the leaf of each distinct (leaf, mask) pair
    pattern_mask: npt.NDArray[np.uint64]  # [patterns]
    pattern_weight: FloatArray  # [patterns]: share of background rows with that mask at that leaf
    expected_value: FloatArray  # [outputs]: mean raw score over the background

    @classmethod
    def fit(cls, ensemble: TreeEnsemble, background: npt.NDArray[Any]) -> TreeShap:
        if ensemble.paths.depth > MAX_DEPTH:
            raise ExplainerUnavailableError(
                f"a leaf's path splits on {ensemble.paths.depth} features; TreeSHAP here handles {MAX_DEPTH}"
            )
        masks = failure_masks(ensemble, background)
        rows, leaves = masks.shape
        pairs = np.stack([np.broadcast_to(np.arange(leaves, dtype=np.uint64), masks.shape), masks], axis=2)
        unique, counts = np.unique(pairs.reshape(-1, 2), axis=0, return_counts=True)
        reached = (masks == 0).mean(axis=0)
        expected = ensemble.base_values + reached @ ensemble.leaf_values
        return cls(ensemble, unique[:, 0].astype(np.int64), unique[:, 1].copy(), counts / rows, expected)

    def explain(self, x: npt.NDArray[Any]) -> FloatArray:
        """[rows, features, outputs] SHAP values of ``x`` in raw score space."""
        ensemble = self.ensemble
        depth = ensemble.paths.depth
        n_features = ensemble.n_features
        inside, outside = shapley_weights(depth)
        slot_feature = ensemble.paths.slot_feature.reshape(-1)
        features = np.where(slot_feature >= 0, slot_feature, n_features)  # unused slots: a dropped column
        masks = failure_masks(ensemble, x)
        values = np.zeros((x.shape[0], n_features, ensemble.leaf_values.shape[1]))
        chunk = max(1, CHUNK_ELEMENTS // max(1, self.pattern_mask.size))
        for start in range(0, len(masks), chunk):
            coefficients = self._slot_coefficients(masks[start : start + chunk], inside, outside)
            rows = coefficients.shape[0]
            columns = (np.arange(rows)[:, None] * (n_features + 1) + features[None, :]).reshape(-1)
            for k in range(values.shape[2]):
                weights = (
                    coefficients.reshape(rows, -1) * np.repeat(ensemble.leaf_values[:, k], depth)[None, :]
                )
                summed = np.bincount(columns, weights=weights.reshape(-1), minlength=rows * (n_features + 1))
                values[start : start + rows, :, k] = summed.reshape(rows, n_features + 1)[:, :n_features]
        return values

    def _slot_coefficients(
        self, x_masks: npt.NDArray[np.uint64], inside: FloatArray, outside: FloatArray
    ) -> FloatArray:
        """[rows, leaves, depth]: each slot's Shapley weight per foreground row, averaged over background."""
        (rows, leaves), depth = x_masks.shape, inside.shape[0] - 1
        # the (row, pattern) pairs whose leaf some hybrid of the row and the pattern's rows reaches
        row, pattern = np.nonzero((self.pattern_mask[None, :] & x_masks[:, self.pattern_leaf]) == 0)
        leaf = self.pattern_leaf[pattern]
        share = self.pattern_weight[pattern]
        x_mask = x_masks[row, leaf]
        only_x = self.pattern_mask[pattern] & ~x_mask  # slots x follows and z leaves: the set A
        a = np.bitwise_count(only_x).astype(np.int64)
        b = np.bitwise_count(x_mask).astype(np.int64)  # slots x leaves (z follows them all): B
        shifts = np.arange(depth, dtype=np.uint64)
        in_a_bits = ((only_x[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.float64)
        cell = row * leaves + leaf
        in_a = np.bincount(
            (cell[:, None] * depth + np.arange(depth)[None, :]).reshape(-1),
            weights=((share * inside[a, b])[:, None] * in_a_bits).reshape(-1),
            minlength=rows * leaves * depth,
        ).reshape(rows, leaves, depth)
        in_b = np.bincount(cell, weights=share * outside[a, b], minlength=rows * leaves).reshape(rows, leaves)
        x_bits = ((x_masks[:, :, None] >> shifts) & np.uint64(1)).astype(np.float64)
        coefficients: FloatArray = in_a - x_bits * in_b[:, :, None]
        return coefficients
