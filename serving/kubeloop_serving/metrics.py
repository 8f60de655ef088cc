"""Prometheus metrics, prefix ``kubeloop_serving_``, base units, one registry per app."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "kubeloop_serving_"
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class ServingMetrics:
    """Every metric the server exports, registered in its own registry."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.requests = Counter(
            PREFIX + "requests",
            "Inference requests answered, by HTTP status code.",
            ["model", "version", "code"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            PREFIX + "request_duration_seconds",
            "Time from receiving an inference request to having its response.",
            ["model", "version"],
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
        self.payload_dropped = Counter(
            PREFIX + "payload_log_dropped",
            "Payload rows dropped because the sink was slow or failing.",
            ["model"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
