"""The distribution of a model's outputs as Prometheus series, for comparing a canary with stable.

Fed whole output arrays per request: class labels go to a counter (one ``np.unique`` per request),
float values to a histogram counted with ``np.searchsorted`` (a plain prometheus_client Histogram
would take one Python call per element: a second for a batch of 1,000 x 1,000 logits). Small float
outputs (a classifier's probabilities) are counted in bulk: each request only queues its array, and
the queue is counted at the next scrape or once ``PENDING_ARRAYS`` are waiting, one ``searchsorted``
for them all. Counting six NumPy calls per request cost a small model a fifth of its CPU per request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

MAX_CLASSES = 50
OTHER_CLASS = "other"
_CLASS_KINDS = "biuOSU"
#: Float outputs of at most this many elements are queued and counted in bulk; larger ones at once.
BULK_ELEMENTS = 1024
#: Queued outputs that trigger counting them (a scrape counts whatever is queued).
PENDING_ARRAYS = 256


class ArrayHistogram(Collector):
    """A labelled histogram observed an array at a time."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.bounds = np.asarray(buckets, np.float64)
        self._counts: dict[tuple[str, ...], np.ndarray[Any, np.dtype[np.int64]]] = {}
        self._sums: dict[tuple[str, ...], float] = {}
        self._pending: list[tuple[tuple[str, ...], np.ndarray[Any, Any]]] = []
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, labels: tuple[str, ...], values: np.ndarray[Any, Any]) -> None:
        """Count every non-NaN element of ``values``: small arrays when next scraped (or once
        ``PENDING_ARRAYS`` wait), large ones now. A view of another array (a row of a merged batch's
        output) is queued as a copy, so that the queue never holds the whole batch's output."""
        if values.size > BULK_ELEMENTS:
            self._count(labels, values)
            return
        held = values.copy() if isinstance(values.base, np.ndarray) else values
        with self._lock:
            self._pending.append((labels, held))
            if len(self._pending) < PENDING_ARRAYS:
                return
        self._count_pending()

    def add(self, labels: tuple[str, ...], counts: Sequence[int], total: float) -> None:
        """Add counts already made per bucket (not cumulative, the last +Inf) and their values' sum."""
        if len(counts) != len(self.bounds) + 1:
            raise ValueError(f"{len(counts)} counts for {len(self.bounds)} buckets and +Inf")
        added = np.asarray(counts, np.int64)
        with self._lock:
            if labels in self._counts:
                self._counts[labels] += added
                self._sums[labels] += total
            else:
                self._counts[labels] = added
                self._sums[labels] = total

    def _count_pending(self) -> None:
        """Count every queued array, grouped by labels (one ``searchsorted`` per label set)."""
        with self._lock:
            pending, self._pending = self._pending, []
        grouped: dict[tuple[str, ...], list[np.ndarray[Any, Any]]] = {}
        for labels, values in pending:
            grouped.setdefault(labels, []).append(np.asarray(values, np.float64).reshape(-1))
        for labels, arrays in grouped.items():
            self._count(labels, np.concatenate(arrays))

    def _count(self, labels: tuple[str, ...], values: np.ndarray[Any, Any]) -> None:
        flat = np.asarray(values, np.float64).reshape(-1)
        flat = flat[~np.isnan(flat)]
        # index i: bounds[i-1] < v <= bounds[i], i.e. Prometheus' "le" bucket; len(bounds) is +Inf
        counts = np.bincount(np.searchsorted(self.bounds, flat, side="left"), minlength=len(self.bounds) + 1)
        total = float(flat.sum())
        with self._lock:
            if labels in self._counts:
                self._counts[labels] += counts
                self._sums[labels] += total
            else:
                self._counts[labels] = counts.astype(np.int64)
                self._sums[labels] = total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        self._count_pending()
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [*(repr(float(bound)) for bound in self.bounds), "+Inf"]
        with self._lock:
            snapshot = [
                (labels, counts.cumsum(), self._sums[labels]) for labels, counts in self._counts.items()
            ]
        for labels, cumulative, total in snapshot:
            named = dict(zip(self.labelnames, labels, strict=True))
            for edge, count in zip(edges, cumulative.tolist(), strict=True):
                family.samples.append(Sample(self.name + "_bucket", {**named, "le": edge}, count))
            # add_metric would leave these out when a bucket is negative, as OpenMetrics asks;
            # a plain prometheus_client Histogram exports them, and analysis needs the count
            family.samples.append(Sample(self.name + "_count", named, int(cumulative[-1])))
            family.samples.append(Sample(self.name + "_sum", named, total))
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)


class OutputDistribution:
    """Counts one model's first output: classes (capped at ``MAX_CLASSES``) or float values."""

    def __init__(self, classes: Counter, values: ArrayHistogram, model: str) -> None:
        self._classes = classes
        self._values = values
        self._model = model
        self._known: set[str] = set()
        self._counters: dict[tuple[str, str, str], Any] = {}

    def observe(self, version: str, track: str, output: np.ndarray[Any, Any]) -> None:
        """Record one answer's first output (called on the event loop)."""
        if output.dtype.kind == "f":
            self._values.observe((self._model, version, track), output)
        elif output.dtype.kind in _CLASS_KINDS:
            if output.size == 1:  # one row's label (most online requests): np.unique costs 8 us
                (label,) = output.reshape(-1).tolist()
                self._counter(version, track, self._class_name(label)).inc(1)
                return
            labels, counts = np.unique(output.reshape(-1), return_counts=True)
            for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
                self._counter(version, track, self._class_name(label)).inc(count)

    def add_classes(self, version: str, track: str, counts: dict[str, int]) -> None:
        """Add rows already counted by class label (as ``str`` of the label)."""
        for label, count in counts.items():
            if count:
                self._counter(version, track, self._class_name(label)).inc(count)

    def _class_name(self, label: object) -> str:
        name = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
        if name in self._known:
            return name
        if len(self._known) < MAX_CLASSES:
            self._known.add(name)
            return name
        return OTHER_CLASS

    def _counter(self, version: str, track: str, name: str) -> Any:
        key = (version, track, name)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self._classes.labels(self._model, version, track, name)
        return counter
