"""Typed server settings, read from ``KUBELOOP_SERVING_*`` environment variables."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kubeloop.contracts.registry_uri import is_registry_uri, parse_registry_uri
from kubeloop.contracts.routing import TRACK_PATTERN
from kubeloop.contracts.serving_env import ENV_PREFIX, MLFLOW_TRACKING_URI

__all__ = ["ENV_PREFIX", "ServingSettings", "model_name_from_uri"]

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


class ServingSettings(BaseSettings):
    """Everything the inference server needs; the operator renders these as env variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, protected_namespaces=(), extra="ignore")

    model_uri: str = Field(
        min_length=1,
        description="Where the ONNX model lives: a path, file://, https://, http://, s3://, "
        "or an MLflow registry URI (models:/name/3, models:/name@alias).",
    )
    model_name: str | None = Field(
        None, description="Name served under /v2/models/{name}; default: derived from MODEL_URI."
    )
    model_version: str | None = Field(
        None, description='Version reported by the server; default: the registry version, else "1".'
    )
    model_sha256: str | None = Field(
        None,
        pattern=r"^[a-fA-F0-9]{64}$",
        description="Expected sha256 of the ONNX file; on mismatch the server exits non-zero, never ready.",
    )
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the REST endpoint (0 picks a free one).")
    grpc_port: int = Field(
        8081,
        ge=0,
        le=65535,
        description="TCP port of the OIP v2 gRPC endpoint (inference.GRPCInferenceService); 0 = no gRPC.",
    )
    max_batch_size: int = Field(
        32, ge=1, le=65536, description="Most rows merged into one onnxruntime call; 1 turns batching off."
    )
    max_batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="Most a request waits for company when others are already queued; never when idle.",
    )
    max_batch_run_ms: float = Field(
        10.0,
        ge=0,
        le=60_000,
        description="A merged batch stops at the rows expected to run this long (fitted from recent runs), "
        "so a request that just misses one waits little; never fewer rows than keep a run's fixed cost "
        "under a tenth of it. 0 = up to MAX_BATCH_SIZE rows.",
    )
    intra_op_threads: int = Field(
        0, ge=0, le=1024, description="onnxruntime intra-op threads; 0 = the container CPU limit."
    )
    inline_run_micros: float = Field(
        100.0,
        ge=0,
        le=1_000_000,
        description="Model runs (a request, or a merged batch) whose recent average took less CPU than "
        "this run on the event loop, sparing the worker-thread hand-off; 0 = always in the worker thread.",
    )
    payload_log_uri: str | None = Field(
        None, description="Directory or s3:// prefix for sampled request/response Parquet; unset = off."
    )
    payload_log_sample_rate: float = Field(
        1.0, ge=0, le=1, description="Share of requests logged when PAYLOAD_LOG_URI is set."
    )
    payload_log_queue_size: int = Field(
        10_000, ge=1, description="Requests waiting for the payload writer; beyond it they are dropped."
    )
    payload_log_flush_rows: int = Field(10_000, ge=1, description="Rows per Parquet file (at most).")
    payload_log_flush_seconds: float = Field(
        10.0, gt=0, description="Longest time a logged row waits before its file is written."
    )
    labels_uri: str | None = Field(
        None,
        description="Directory or s3:// prefix where POST /v2/models/{name}/feedback appends ground truth "
        "(kubeloop.contracts.labels) under {model}/; unset = no feedback endpoint.",
    )
    max_request_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest request body accepted; larger ones get 400."
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Longest time a request body may take to arrive, from its first byte to its last; "
        "a slower one is answered 408 and never reaches the batcher.",
    )
    max_decoded_factor: float = Field(
        8.0,
        ge=1,
        le=64,
        description="Decoded inputs of one request may take at most this many times MAX_REQUEST_BYTES "
        "of memory; a request that would take more is refused with 413 before anything is allocated.",
    )
    max_connection_age_seconds: float = Field(
        30.0,
        ge=0,
        le=86_400,
        description="A connection older than this (give or take 10 %) is closed after its next answer "
        "(REST: Connection: close; gRPC: GOAWAY), so clients reconnect through the Service and reach "
        "pods added since they connected; 0 = connections never age out.",
    )
    drain_seconds: float = Field(
        20.0, ge=0, description="On SIGTERM, how long in-flight requests may take to finish."
    )
    routes_file: str | None = Field(
        None,
        description="Routing table (kubeloop.contracts.routing, e.g. /etc/kubeloop/routes/routes.json): "
        "canary split, shadow, A/B; re-read when it changes. Unset = every request served here.",
    )
    track: str = Field(
        "stable",
        max_length=63,
        pattern=TRACK_PATTERN,
        description="Which track this server is (stable, canary, shadow or an A/B variant's name): "
        "the x-kubeloop-track answer header, the metrics' track label, the payload log's _track.",
    )
    routes_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="How often the routes file is checked for a change."
    )
    forward_connect_timeout_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="A route (canary, variant) not connected within this is skipped: "
        "the request is served here and counted as a fallback.",
    )
    forward_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Longest a forwarded request may take before it is served here instead.",
    )
    shadow_concurrency: int = Field(
        8, ge=1, le=1024, description="Shadow copies in flight at once; the rest wait in the shadow queue."
    )
    dataplane: Literal["python", "native"] = Field(
        "python",
        description="native: kubeloop-dataplane (Rust) listens on PORT in front of this server and answers "
        "JSON inference requests for numeric models itself, forwarding everything else here (on a "
        "loopback port), but while the routes file routes anything; not with the payload log (then "
        "python is used).",
    )
    dataplane_binary: str = Field(
        "kubeloop-dataplane", description="The native data plane's executable (a path, or a name on PATH)."
    )
    explain_enabled: bool = Field(
        False,
        description="Serve POST /v2/models/{name}[/versions/{v}]/explain (and KServe v1 :explain); "
        "off: those paths answer 404.",
    )
    explain_method: Literal["auto", "tree", "permutation", "lime"] = Field(
        "auto",
        description="Default explainer: tree (exact TreeSHAP from the ONNX tree ensemble), permutation "
        "(permutation SHAP), lime; auto = tree for tree ensembles, else permutation.",
    )
    explain_background_uri: str | None = Field(
        None,
        description="Reference rows (Parquet/CSV file or folder: path, file://, s3://, https://) the "
        "explanations are relative to; required when explanations are on.",
    )
    explain_background_rows: int = Field(
        100, ge=1, le=10_000, description="Background rows sampled (without replacement, seed 0) at load."
    )
    explain_budget: int = Field(
        1000,
        ge=2,
        le=1_000_000,
        description="Model evaluations per explained row for permutation SHAP (max_evals) and LIME "
        "(num_samples) when the request's parameters.budget does not say.",
    )
    explain_max_budget: int = Field(
        100_000, ge=2, le=10_000_000, description="Largest budget a request may ask for (400 beyond)."
    )
    explain_max_rows: int = Field(
        100, ge=1, le=100_000, description="Most rows one explain request may carry (400 beyond)."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Python and uvicorn log level."
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices(MLFLOW_TRACKING_URI),
        description="MLflow tracking server for models:/ URIs (standard unprefixed MLFLOW_TRACKING_URI).",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lowercase_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _explanations_need_background(self) -> ServingSettings:
        if self.explain_enabled and self.explain_background_uri is None:
            raise ValueError(
                "EXPLAIN_ENABLED needs EXPLAIN_BACKGROUND_URI (the reference rows to explain against)"
            )
        return self

    @property
    def served_model_name(self) -> str:
        """MODEL_NAME, or a name derived from MODEL_URI."""
        return self.model_name or model_name_from_uri(self.model_uri)

    @property
    def max_decoded_bytes(self) -> int:
        """The per-request bound on decoded input memory (MAX_DECODED_FACTOR x MAX_REQUEST_BYTES)."""
        return int(self.max_decoded_factor * self.max_request_bytes)

    @property
    def payload_logging_enabled(self) -> bool:
        """Whether any request can be logged."""
        return self.payload_log_uri is not None and self.payload_log_sample_rate > 0


def model_name_from_uri(uri: str) -> str:
    """``models:/fraud@prod`` -> fraud; ``s3://b/iris/model.onnx`` -> iris; ``/m/net.onnx`` -> net."""
    if is_registry_uri(uri):
        try:
            return _safe_name(parse_registry_uri(uri).name)
        except ValueError:
            pass
    path = uri.split("?", 1)[0].rstrip("/")
    parts = [part for part in path.split("/") if part and not part.endswith(":")]
    while parts and parts[-1] == "model.onnx":
        parts.pop()
    stem = parts[-1].removesuffix(".onnx") if parts else ""
    return _safe_name(stem)


def _safe_name(name: str) -> str:
    return _UNSAFE_NAME_CHARS.sub("-", name).strip("-.") or "model"
