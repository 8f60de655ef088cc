"""Seeded train/validation/test splits, k-fold folds and per-rank shards, as row indices."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from kubeloop_trainer.errors import BadDataError, InvalidSpecError
from kubeloop_trainer.features import Features, FloatMatrix

Indices = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Split:
    train: Indices
    validation: Indices
    test: Indices


@dataclass(frozen=True)
class Part:
    """The rows of one split: features, target and (with a fairness gate) the sensitive attributes."""

    x: FloatMatrix
    y: npt.NDArray[Any]
    sensitive: npt.NDArray[np.str_] | None = None

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class SplitData:
    train: Part
    validation: Part
    test: Part


def _stratify_labels(y: npt.NDArray[Any] | None, n_holdout: int) -> npt.NDArray[Any] | None:
    """Labels to stratify by, or None where stratifying cannot work (a class with < 2 rows)."""
    if y is None:
        return None
    counts = np.bincount(y)
    if counts[counts > 0].min() < 2 or n_holdout < np.count_nonzero(counts):
        return None
    return y


def _holdout(indices: Indices, y: npt.NDArray[Any] | None, size: int, seed: int) -> tuple[Indices, Indices]:
    labels = None if y is None else y[indices]
    stratify = _stratify_labels(labels, size)
    rest, held = train_test_split(indices, test_size=size, random_state=seed, stratify=stratify)
    return np.sort(rest), np.sort(held)


def split_rows(
    n_rows: int, y: npt.NDArray[Any] | None, validation_fraction: float, test_fraction: float, seed: int
) -> Split:
    """Split rows 0..n-1 reproducibly; ``y`` (class indices) stratifies the split when given."""
    if validation_fraction + test_fraction >= 1:
        raise InvalidSpecError("validationFraction + testFraction must leave rows to train on (sum < 1)")
    n_test = round(n_rows * test_fraction)
    n_validation = round(n_rows * validation_fraction)
    if min(n_test, n_validation, n_rows - n_test - n_validation) < 1:
        raise BadDataError(f"{n_rows} rows are too few to split into train, validation and test sets")
    everything = np.arange(n_rows, dtype=np.int64)
    rest, test = _holdout(everything, y, n_test, seed)
    train, validation = _holdout(rest, y, n_validation, seed + 1)
    return Split(train=train, validation=validation, test=test)


def take(features: Features, split: Split) -> SplitData:
    def part(rows: Indices) -> Part:
        groups = None if features.sensitive is None else features.sensitive[rows]
        return Part(x=features.x[rows], y=features.y[rows], sensitive=groups)

    return SplitData(train=part(split.train), validation=part(split.validation), test=part(split.test))


def folds(part: Part, n_folds: int, classification: bool, seed: int) -> Iterator[tuple[Part, Part]]:
    """(train, held-out) pairs of k-fold cross-validation, stratified for classification."""
    if len(part) < n_folds:
        raise BadDataError(f"{len(part)} training rows are too few for {n_folds}-fold cross-validation")
    splitter = (
        StratifiedKFold(n_folds, shuffle=True, random_state=seed)
        if classification and np.bincount(part.y).min() >= n_folds
        else KFold(n_folds, shuffle=True, random_state=seed)
    )
    for fit_rows, held_rows in splitter.split(part.x, part.y):
        yield Part(part.x[fit_rows], part.y[fit_rows]), Part(part.x[held_rows], part.y[held_rows])


def shard(n_rows: int, rank: int, world_size: int, seed: int, epoch: int) -> Indices:
    """This rank's rows for one epoch: one seeded permutation shared by all ranks, padded so that
    every rank gets the same number of rows (DDP needs equal step counts), dealt round-robin."""
    order = np.random.default_rng([seed, epoch]).permutation(n_rows)
    per_rank = -(-n_rows // world_size)
    padded = np.resize(order, per_rank * world_size)
    return padded[rank::world_size].astype(np.int64)
