"""The output distribution (kubeloop_serving.predictions): small float outputs are queued and counted
in bulk, one row's label is counted without np.unique, and what a scrape shows is unchanged."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter

from kubeloop_serving.predictions import (
    BULK_ELEMENTS,
    MAX_CLASSES,
    OTHER_CLASS,
    PENDING_ARRAYS,
    ArrayHistogram,
    OutputDistribution,
)

pytestmark = pytest.mark.unit

BOUNDS = (-1.0, 0.0, 0.5, 1.0)


def histogram() -> tuple[ArrayHistogram, CollectorRegistry]:
    registry = CollectorRegistry()
    return ArrayHistogram("out", "Outputs.", ["model", "track"], BOUNDS, registry), registry


def scraped(registry: CollectorRegistry, **labels: str) -> dict[str, float]:
    """``{le: cumulative count, "count": n, "sum": s}`` for one label set, from a collection."""
    found: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            sample_labels = dict(sample.labels)
            le = sample_labels.pop("le", None)
            if sample_labels != labels:
                continue
            if sample.name.endswith("_bucket"):
                found[str(le)] = sample.value
            else:
                found[sample.name.rsplit("_", 1)[1]] = sample.value
    return found


def expected(arrays: list[np.ndarray[Any, Any]]) -> dict[str, float]:
    values = [float(v) for array in arrays for v in array.reshape(-1) if not math.isnan(v)]
    found = {repr(bound): float(sum(v <= bound for v in values)) for bound in BOUNDS}
    found["+Inf"] = float(len(values))
    found["count"] = float(len(values))
    found["sum"] = sum(values)
    return found


def test_queued_outputs_are_all_counted_at_the_next_scrape() -> None:
    values, registry = histogram()
    rng = np.random.default_rng(0)
    stable = [rng.normal(size=(1, 10)).astype(np.float32) for _ in range(7)]
    canary = [np.array([[0.5, np.nan, -3.0, 1.0]], np.float32)]
    for array in stable:
        values.observe(("m", "stable"), array)
    values.observe(("m", "canary"), canary[0])
    got = scraped(registry, model="m", track="stable")
    assert got == pytest.approx(expected(stable))
    assert scraped(registry, model="m", track="canary") == pytest.approx(expected(canary))
    assert scraped(registry, model="m", track="stable") == pytest.approx(got), "a second scrape adds nothing"


def test_outputs_are_counted_without_a_scrape_once_enough_are_queued() -> None:
    values, _ = histogram()
    for _ in range(PENDING_ARRAYS - 1):
        values.observe(("m", "stable"), np.zeros((1, 2), np.float32))
    assert not values._counts, "still queued"
    values.observe(("m", "stable"), np.zeros((1, 2), np.float32))
    assert values._counts[("m", "stable")].sum() == 2 * PENDING_ARRAYS
    assert not values._pending


def test_large_outputs_are_counted_at_once() -> None:
    values, registry = histogram()
    large = np.linspace(-2, 2, BULK_ELEMENTS + 1)
    values.observe(("m", "stable"), large)
    assert values._counts[("m", "stable")].sum() == large.size and not values._pending
    assert scraped(registry, model="m", track="stable") == pytest.approx(expected([large]))


def test_a_row_of_a_merged_output_is_queued_as_a_copy() -> None:
    values, registry = histogram()
    merged = np.full((4, 3), 0.25, np.float32)
    rows = np.split(merged, 4)
    for row in rows:
        values.observe(("m", "stable"), row)
    assert all(held.base is None for _, held in values._pending), "the batch's output is not kept"
    merged[:] = 2.0  # what the server does with the batch afterwards changes nothing counted
    assert scraped(registry, model="m", track="stable") == pytest.approx(expected([np.full(12, 0.25)]))


def test_observing_while_scraping_loses_nothing() -> None:
    values, registry = histogram()
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            list(registry.collect())

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for _ in range(20 * PENDING_ARRAYS + 3):
            values.observe(("m", "stable"), np.array([0.1, 0.7], np.float32))
    finally:
        done.set()
        scraper.join()
    assert scraped(registry, model="m", track="stable")["count"] == 2 * (20 * PENDING_ARRAYS + 3)


def class_counts(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["class"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "classes_total"
    }


@pytest.mark.parametrize(
    "output",
    [
        np.array([3], np.int64),
        np.array([[3]], np.int32),
        np.array(3, np.int64),
        np.array([True]),
        np.array(["yes"], object),
        np.array(["yes"]),
        np.array([b"yes"]),
        np.array([b"\xff"]),
    ],
    ids=["int64", "int32-2d", "int64-0d", "bool", "object-str", "unicode", "bytes", "bad-utf8"],
)
def test_a_single_label_counts_as_np_unique_counts_it(output: np.ndarray[Any, Any]) -> None:
    """One row's label skips np.unique; the series is the one a batch of one gave before."""
    counted = {}
    for single in (True, False):
        registry = CollectorRegistry()
        classes = Counter("classes", "Classes.", ["model", "version", "track", "class"], registry=registry)
        distribution = OutputDistribution(classes, ArrayHistogram("v", "V.", ["m"], BOUNDS, registry), "m")
        observed = output if single else np.concatenate([output.reshape(-1)] * 2)
        distribution.observe("1", "stable", observed)
        counted[single] = {
            name: value * (1 if single else 0.5) for name, value in class_counts(registry).items()
        }
    assert counted[True] == counted[False] and sum(counted[True].values()) == 1


def test_single_labels_beyond_the_class_cap_count_as_other() -> None:
    registry = CollectorRegistry()
    classes = Counter("classes", "Classes.", ["model", "version", "track", "class"], registry=registry)
    distribution = OutputDistribution(classes, ArrayHistogram("v", "V.", ["m"], BOUNDS, registry), "m")
    for label in range(MAX_CLASSES + 5):
        distribution.observe("1", "stable", np.array([label], np.int64))
    distribution.observe("1", "stable", np.array([0], np.int64))
    counts = class_counts(registry)
    assert counts[OTHER_CLASS] == 5 and counts["0"] == 2 and len(counts) == MAX_CLASSES + 1
