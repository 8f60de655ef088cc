"""The native data plane (``dataplane/``, the ``kubeloop-dataplane`` binary) and ``kubeloop serve``.

``kubeloop serve`` starts the binary in front of itself with a ``DataPlaneEnv``; the binary answers
the inference requests it can answer exactly as the Python server would and forwards the rest to it.
At each scrape the Python server reads the binary's ``DataPlaneStats`` (``GET STATS_PATH``) and adds
what it answered to its own series, so ``/metrics`` counts every request whichever process answered.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from kubeloop.contracts.serving_env import env_value

ENV_PREFIX = "KUBELOOP_DATAPLANE_"
STATS_PATH = "/dataplane/stats"
#: PUT ``true`` or ``false`` (from a loopback peer only): whether the binary answers inference or
#: forwards all of it, as while the Python server routes (a canary, shadow or A/B test).
ANSWERING_PATH = "/dataplane/answering"
BINARY = "kubeloop-dataplane"


@dataclass(frozen=True)
class DataPlaneEnv:
    """Every setting of the binary (``dataplane/src/config.rs``); all are given."""

    model_path: str
    model_name: str
    model_version: str
    track: str
    host: str
    port: int
    upstream: str  # http://127.0.0.1:<port> of the Python server
    ort_library: str  # libonnxruntime.so of the onnxruntime package the Python server uses
    intra_op_threads: int
    max_request_bytes: int
    drain_seconds: float
    body_timeout_seconds: float
    max_connection_age_seconds: float
    answering: bool  # at start; then as told at ANSWERING_PATH

    def to_env(self) -> dict[str, str]:
        return {ENV_PREFIX + name.upper(): env_value(value) for name, value in asdict(self).items()}


class StatsError(ValueError):
    """A stats document that does not follow the contract."""


@dataclass(frozen=True)
class HistogramCounts:
    """Counts per bucket (not cumulative; the last is +Inf) and the sum of the values counted."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float

    @classmethod
    def zero(cls, bounds: tuple[float, ...]) -> HistogramCounts:
        return cls(bounds, (0,) * (len(bounds) + 1), 0.0)


@dataclass(frozen=True)
class DataPlaneStats:
    """What the binary answered since it started (all code 200: it answers no error itself)."""

    requests: int
    inflight: int
    duration: HistogramCounts  # seconds, on kubeloop_serving.metrics.LATENCY_BUCKETS
    prediction: HistogramCounts  # the first output's float values, on PREDICTION_BUCKETS
    classes: dict[
        str, int
    ]  # the first output's labels (integer or bool outputs), at most MAX_CLASSES + "other"

    @classmethod
    def zero(cls, latency: tuple[float, ...], prediction: tuple[float, ...]) -> DataPlaneStats:
        return cls(0, 0, HistogramCounts.zero(latency), HistogramCounts.zero(prediction), {})

    @classmethod
    def from_json(cls, text: bytes | str) -> DataPlaneStats:
        try:
            document = json.loads(text)
            classes = document["classes"]
            if not isinstance(classes, dict):
                raise StatsError("classes must be an object")
            return cls(
                requests=_count(document["requests"]),
                inflight=_count(document["inflight"]),
                duration=_histogram(document["duration"]),
                prediction=_histogram(document["prediction"]),
                classes={str(label): _count(count) for label, count in classes.items()},
            )
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise StatsError(f"not a data plane stats document: {error!r}") from None


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StatsError(f"a count must be a non-negative integer, got {value!r}")
    return value


def _histogram(document: Any) -> HistogramCounts:
    bounds = tuple(float(bound) for bound in document["bounds"])
    counts = tuple(_count(count) for count in document["counts"])
    if len(counts) != len(bounds) + 1:
        raise StatsError(f"{len(counts)} counts for {len(bounds)} bounds (one more is +Inf)")
    return HistogramCounts(bounds, counts, float(document["sum"]))
