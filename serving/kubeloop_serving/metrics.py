"""Prometheus metrics, prefix ``kubeloop_serving_``, base units, one registry per app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kubeloop_serving.predictions import ArrayHistogram

PREFIX = "kubeloop_serving_"
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
EXPLAIN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: Fine in [0, 1] (probabilities, scores), coarse and symmetric beyond (regression outputs).
PREDICTION_BUCKETS = (
    -1000.0, -100.0, -10.0, -2.0, -1.0, -0.5, -0.1, 0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5,
    0.6, 0.7, 0.8, 0.9, 0.95, 1.0, 2.0, 10.0, 100.0, 1000.0,
)  # fmt: skip


@dataclass
class ServingMetrics:
    """Every metric the server exports, registered in its own registry."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))
    #: Called before each exposition (the native data plane's counts are added then).
    before_exposition: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.requests = Counter(
            PREFIX + "requests",
            "Inference requests this server took to compute (not those routed elsewhere), by track and "
            "HTTP status code (499: the client went away before the answer, a gRPC deadline or cancel).",
            ["model", "version", "track", "code"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            PREFIX + "request_duration_seconds",
            "Time from receiving an inference request to having its response (computed here).",
            ["model", "version", "track"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            PREFIX + "batch_size",
            "Rows per onnxruntime call (merged requests count together; a failed merged call is "
            "retried request by request).",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_limit = Gauge(
            PREFIX + "batch_limit_rows",
            "Rows the next merged batch may take: MAX_BATCH_SIZE, or fewer once the batch run budget "
            "(MAX_BATCH_RUN_MS) has been learned from recent runs. Absent when batching is off.",
            ["model", "version"],
            registry=self.registry,
        )
        self.inflight = Gauge(
            PREFIX + "inflight_requests",
            "Inference requests being handled right now.",
            ["model"],
            registry=self.registry,
        )
        self.model_load = Gauge(
            PREFIX + "model_load_seconds",
            "Seconds spent fetching, verifying, loading and warming up the model.",
            ["model", "version"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            PREFIX + "model_info",
            "The served model; always 1.",
            ["model", "version", "uri_scheme"],
            registry=self.registry,
        )
        self.payload_rows = Counter(
            PREFIX + "payload_log_rows",
            "Payload rows written to the sink.",
            ["model"],
            registry=self.registry,
        )
        self.feedback_labels = Counter(
            PREFIX + "feedback_labels",
            "Ground-truth labels received through the feedback endpoint and written to the label sink.",
            ["model"],
            registry=self.registry,
        )
        self.payload_dropped = Counter(
            PREFIX + "payload_log_dropped",
            "Payload rows dropped because the sink was slow or failing.",
            ["model"],
            registry=self.registry,
        )
        self._routing_metrics()
        self._prediction_metrics()
        self._explain_metrics()

    def _routing_metrics(self) -> None:
        self.routed = Counter(
            PREFIX + "routed_requests",
            "Requests this server forwarded to a route (canary or A/B variant), by the route's answer "
            'code ("error": not reached, served here instead).',
            ["model", "route", "code"],
            registry=self.registry,
        )
        self.forward_duration = Histogram(
            PREFIX + "forward_duration_seconds",
            "Time from forwarding a request to a route to having its whole answer.",
            ["model", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.route_fallbacks = Counter(
            PREFIX + "route_fallbacks",
            "Requests meant for a route that were served here: the route could not be reached "
            "(connect, timeout, error) or was not ready (unavailable: it answered 503).",
            ["model", "route", "reason"],
            registry=self.registry,
        )
        self.route_weight = Gauge(
            PREFIX + "route_weight_percent",
            "Weight in effect per route: canary, shadow, or an A/B variant (absent: no such route).",
            ["model", "route"],
            registry=self.registry,
        )
        self.routes_generation = Gauge(
            PREFIX + "routes_generation",
            "ModelDeployment generation of the routing table in effect (-1: none loaded).",
            ["model"],
            registry=self.registry,
        )
        self.routes_reload_errors = Counter(
            PREFIX + "routes_reload_errors",
            "Routes files that could not be read or were invalid (the last good table stays).",
            ["model"],
            registry=self.registry,
        )
        self.shadow_requests = Counter(
            PREFIX + "shadow_requests",
            'Copies sent to the shadow, by its answer code ("error": no answer).',
            ["model", "code"],
            registry=self.registry,
        )
        self.shadow_dropped = Counter(
            PREFIX + "shadow_dropped",
            "Copies for the shadow dropped because its queue was full.",
            ["model"],
            registry=self.registry,
        )
        self.shadow_rows = Counter(
            PREFIX + "shadow_rows",
            "Rows the shadow answered, by whether its prediction agrees with stable's (the non-float "
            "outputs, e.g. a classifier's label, exactly; else numpy.allclose on the floats).",
            ["model", "result"],
            registry=self.registry,
        )

    def _prediction_metrics(self) -> None:
        self.predicted_class = Counter(
            PREFIX + "predicted_class",
            "Rows of the first output by predicted class (integer, bool or string outputs; at most "
            'MAX_CLASSES classes, the rest "other").',
            ["model", "version", "track", "class"],
            registry=self.registry,
        )
        self.prediction = ArrayHistogram(
            PREFIX + "prediction",
            "Values of the first output (float outputs; every element of each row).",
            ["model", "version", "track"],
            PREDICTION_BUCKETS,
            registry=self.registry,
        )

    def _explain_metrics(self) -> None:
        self.explanations = Counter(
            PREFIX + "explanations",
            "Explain requests, by method and HTTP status code.",
            ["model", "method", "code"],
            registry=self.registry,
        )
        self.explained_rows = Counter(
            PREFIX + "explained_rows",
            "Rows explained successfully, by method.",
            ["model", "method"],
            registry=self.registry,
        )
        self.explain_duration = Histogram(
            PREFIX + "explain_duration_seconds",
            "Time from receiving an explain request to having its answer.",
            ["model", "method"],
            buckets=EXPLAIN_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text exposition format of every metric."""
        for refresh in self.before_exposition:
            refresh()
        return generate_latest(self.registry)
