"""Benchmark data for bench/drift.py: 10 numeric and 10 categorical features, some drifted.

Reference and current have the same size and come from the same generator; each feature
states what happens to it in the current window (and so what a sound default should say).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA_VERSION = 1
SEED = 20260310

Generator = Callable[[np.random.Generator, int, bool], pa.Array]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str
    change: str
    generate: Generator


def _normal(mean: float, std: float, current_mean: float, current_std: float) -> Generator:
    def generate(rng: np.random.Generator, rows: int, current: bool) -> pa.Array:
        return pa.array(rng.normal(current_mean if current else mean, current_std if current else std, rows))

    return generate


def _lognormal(rng: np.random.Generator, rows: int, current: bool) -> pa.Array:
    return pa.array(rng.lognormal(0, 1, rows))


def _exponential(rng: np.random.Generator, rows: int, current: bool) -> pa.Array:
    return pa.array(rng.exponential(1.3 if current else 1.0, rows))


def _integers(rng: np.random.Generator, rows: int, current: bool) -> pa.Array:
    return pa.array(rng.integers(0, 50, rows))


def _with_missing(rng: np.random.Generator, rows: int, current: bool) -> pa.Array:
    values = rng.normal(10, 2, rows)
    if current:
        values[rng.random(rows) < 0.1] = np.nan
    return pa.array(values)


def _mixture(rng: np.random.Generator, rows: int, current: bool) -> pa.Array:
    left = rng.random(rows) < (0.3 if current else 0.5)
    return pa.array(np.where(left, rng.normal(-2, 1, rows), rng.normal(2, 1, rows)))


def _uniform32(rng: np.random.Generator, rows: int, current: bool) -> pa.Array:
    return pa.array(rng.random(rows, dtype=np.float32))


def _categories(
    count: int,
    shares: list[float] | None,
    current_shares: list[float] | None = None,
    unseen_share: float = 0.0,
    missing_share: float = 0.0,
) -> Generator:
    def generate(rng: np.random.Generator, rows: int, current: bool) -> pa.Array:
        base = np.array(shares) if shares else 1.0 / np.arange(1, count + 1)  # zipf-like by default
        chosen = np.array(current_shares) if current and current_shares else base
        labels = [f"v{i:04d}" for i in range(count)]
        codes = rng.choice(count, rows, p=chosen / chosen.sum())
        if current and unseen_share:
            unseen = rng.random(rows) < unseen_share
            labels += [f"new{i}" for i in range(10)]
            codes[unseen] = count + rng.integers(0, 10, int(unseen.sum()))
        mask = rng.random(rows) < missing_share if missing_share else None
        array = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=mask), pa.array(labels))
        return array.cast(pa.string())

    return generate


FEATURES = [
    FeatureSpec("num_0", "numeric", "none", _normal(0, 1, 0, 1)),
    FeatureSpec("num_1", "numeric", "mean +0.5 std", _normal(0, 1, 0.5, 1)),
    FeatureSpec("num_2", "numeric", "std x1.5", _normal(0, 1, 0, 1.5)),
    FeatureSpec("num_3", "numeric", "mean +0.02 std (negligible)", _normal(0, 1, 0.02, 1)),
    FeatureSpec("num_4", "numeric", "none (lognormal)", _lognormal),
    FeatureSpec("num_5", "numeric", "exponential scale x1.3", _exponential),
    FeatureSpec("num_6", "numeric", "none (50 integers)", _integers),
    FeatureSpec("num_7", "numeric", "none, 10% missing in current", _with_missing),
    FeatureSpec("num_8", "numeric", "mixture weights 50/50 -> 30/70", _mixture),
    FeatureSpec("num_9", "numeric", "none (float32 uniform)", _uniform32),
    FeatureSpec("cat_0", "categorical", "none (5 categories)", _categories(5, [0.3, 0.25, 0.2, 0.15, 0.1])),
    FeatureSpec(
        "cat_1",
        "categorical",
        "5 categories reshuffled",
        _categories(5, [0.3, 0.25, 0.2, 0.15, 0.1], [0.1, 0.15, 0.2, 0.25, 0.3]),
    ),
    FeatureSpec("cat_2", "categorical", "none (50 zipf)", _categories(50, None)),
    FeatureSpec(
        "cat_3",
        "categorical",
        "15% of rows in 10 unseen categories",
        _categories(50, None, unseen_share=0.15),
    ),
    FeatureSpec("cat_4", "categorical", "none (binary)", _categories(2, [0.5, 0.5])),
    FeatureSpec(
        "cat_5",
        "categorical",
        "shares +-0.01 (negligible)",
        _categories(3, [0.34, 0.33, 0.33], [0.35, 0.33, 0.32]),
    ),
    FeatureSpec("cat_6", "categorical", "none, 5% missing", _categories(20, None, missing_share=0.05)),
    FeatureSpec("cat_7", "categorical", "none (1000 categories)", _categories(1000, [1.0] * 1000)),
    FeatureSpec(
        "cat_8",
        "categorical",
        "10 categories, big shift",
        _categories(10, [0.1] * 10, [0.3, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0.04, 0.03, 0.03]),
    ),
    FeatureSpec("cat_9", "categorical", "binary 90/10 -> 85/15", _categories(2, [0.9, 0.1], [0.85, 0.15])),
]


def ensure_data(folder: Path, rows: int) -> tuple[Path, Path]:
    """reference.parquet and current.parquet with ``rows`` rows each (reused when present)."""
    folder.mkdir(parents=True, exist_ok=True)
    reference, current, marker = (
        folder / "reference.parquet",
        folder / "current.parquet",
        folder / "data.json",
    )
    wanted = {"rows": rows, "seed": SEED, "version": DATA_VERSION}
    if (
        reference.exists()
        and current.exists()
        and marker.exists()
        and json.loads(marker.read_text()) == wanted
    ):
        return reference, current
    for path, is_current in ((reference, False), (current, True)):
        rng = np.random.default_rng(SEED + is_current)
        table = pa.table({spec.name: spec.generate(rng, rows, is_current) for spec in FEATURES})
        pq.write_table(table, path)
    marker.write_text(json.dumps(wanted))
    return reference, current
