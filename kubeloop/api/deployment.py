"""ModelDeployment: autoscaled ONNX inference servers speaking Open Inference Protocol v2."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from kubeloop.api.common import (
    DATA_URI_PATTERN,
    DNS_LABEL_PATTERN,
    IMAGE_PATTERN,
    MODEL_URI_PATTERN,
    SINK_URI_PATTERN,
    ApiModel,
    Name,
    PodEnvironment,
    Resources,
)
from kubeloop.api.labels import validations

SHA256_PATTERN = r"^[a-f0-9]{64}$"


class ModelSource(ApiModel):
    uri: str = Field(
        pattern=MODEL_URI_PATTERN,
        description="models:/name@alias, models:/name/3, s3://, file://, https:// or an absolute path.",
    )
    sha256: str | None = Field(None, pattern=SHA256_PATTERN, description="Refuse to serve a different file.")


class Replicas(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "message": "replicas.min must be <= replicas.max"}
            ]
        }
    )
    min: int = Field(1, ge=1, le=1000)
    max: int = Field(3, ge=1, le=1000)


IN_FLIGHT_RULE = {
    "rule": "(self.metric == 'inFlight') == has(self.targetInFlight)",
    "message": "targetInFlight is required when metric is inFlight, and only then",
}
# The API server compares an integer value with a fractional `minimum` after truncating the minimum
# (0.01 -> 0), so `minimum` alone lets 0 through: this rule compares as numbers.
IN_FLIGHT_MINIMUM_RULE = {"rule": "self >= 0.01", "message": "targetInFlight must be at least 0.01"}


class Autoscaling(ApiModel):
    """The stable track's HorizontalPodAutoscaler: on CPU (default), or on requests in flight per pod
    (needs the custom metrics API: the chart's prometheusAdapter.enabled, see operator/README.md)."""

    model_config = ConfigDict(json_schema_extra=validations([IN_FLIGHT_RULE]))

    metric: Literal["cpu", "inFlight"] = Field(
        "cpu",
        description="cpu: average CPU utilization of requests; inFlight: average requests in flight per "
        "pod (kubeloop_serving_inflight_requests, served by prometheus-adapter).",
    )
    target_cpu_utilization: int = Field(70, ge=1, le=100, description="Average CPU % of requests.")
    target_in_flight: float | None = Field(
        None,
        ge=0.01,
        le=100000,
        description="Average requests in flight per pod to scale to (metric inFlight), e.g. the batch "
        "size a pod runs well at.",
        json_schema_extra=validations([IN_FLIGHT_MINIMUM_RULE]),
    )
    scale_down_stabilization_seconds: int = Field(
        300, ge=0, le=3600, description="Scale down only to the highest recommendation of this window."
    )

    @model_validator(mode="after")
    def _target_of_the_metric(self) -> Autoscaling:
        if (self.metric == "inFlight") != (self.target_in_flight is not None):
            raise ValueError(IN_FLIGHT_RULE["message"])
        return self


class Grpc(ApiModel):
    """OIP v2 gRPC next to REST on the same pods."""

    enabled: bool = Field(
        True,
        description="Serve inference.GRPCInferenceService on port 8081: the Service's port `grpc` and a "
        "headless Service `<name>-grpc` for client-side balancing across pods. REST is always served.",
    )


class Batching(ApiModel):
    """Adaptive batching: merge what is queued, up to a size, waiting at most maxWaitMs."""

    max_batch_size: int = Field(32, ge=1, le=4096, description="1 turns batching off.")
    max_wait_ms: float = Field(2.0, ge=0, le=1000)
    max_run_ms: float = Field(
        10.0,
        ge=0,
        le=60_000,
        description="A batch stops at the rows expected to run this long (fitted from recent runs), so a "
        "request that just misses one waits little; never fewer rows than keep a run's fixed cost under a "
        "tenth of it. 0 = up to maxBatchSize.",
    )


class PayloadLogging(ApiModel):
    """Sampled request/response logging to Parquet, read by DriftMonitor."""

    sink_uri: str = Field(pattern=SINK_URI_PATTERN, description="s3:// or a directory (file:// or a path).")
    sample_rate: float = Field(1.0, ge=0, le=1)
    persistent_volume_claim: Name | None = Field(
        None, description="PVC mounted at the sink directory (for file sinks shared with DriftMonitor)."
    )


class Explain(ApiModel):
    """Explanations at serving time: ``POST /v2/models/{name}/explain`` on the model's servers (opt-in)."""

    enabled: bool = Field(
        True, description="Serve explanations; false keeps the settings but turns them off."
    )
    method: Literal["auto", "tree", "permutation", "lime"] = Field(
        "auto",
        description="tree: exact TreeSHAP from the ONNX tree ensemble; permutation: permutation SHAP; "
        "lime: LIME; auto: tree for tree ensembles, else permutation. A request may pick another.",
    )
    background_uri: str = Field(
        pattern=DATA_URI_PATTERN,
        description="Reference rows (Parquet/CSV file or folder) the attributions are relative to, "
        "e.g. the training data or a DriftMonitor's reference.",
    )
    background_rows: int = Field(100, ge=1, le=10000, description="Rows sampled from backgroundUri at load.")
    budget: int = Field(
        1000,
        ge=2,
        le=1000000,
        description="Model evaluations per explained row for permutation SHAP and LIME, unless a request "
        "sets parameters.budget.",
    )
    separate_pods: bool = Field(
        False,
        description="Explain in pods of their own (Deployment and Service <name>-explainer, serving the "
        "stable model) so explanations never take CPU from inference; the stable servers then answer "
        "/explain with 404.",
    )
    replicas: int = Field(1, ge=1, le=100, description="Explainer pods when separatePods is true.")


STEPS_RULE = {
    "rule": "self.isSorted() && self.all(x, self.exists_one(y, y == x))",
    "message": "steps must be strictly increasing weights (percent of requests), e.g. [5, 10, 25, 50]",
}
CANARY_MODE_RULE = {
    "rule": "has(self.trafficPercent) != has(self.analysis)",
    "message": "set exactly one of trafficPercent (a fixed weight) or analysis (stepped weights with checks)",
}
Percent = Annotated[int, Field(ge=1, le=100)]


class CanaryChecks(ApiModel):
    """SLOs of the canary, read from Prometheus over the same window for both tracks; unset: not checked;
    set but not measurable in a window (a relative check while stable answers nothing): the step is held."""

    max_error_rate: float | None = Field(
        0.01, ge=0, le=1, description="Highest share of the canary's requests answered 5xx."
    )
    max_error_rate_increase: float | None = Field(
        None, ge=0, le=1, description="Highest canary error rate minus stable's (0.01: one point more)."
    )
    max_p99_seconds: float | None = Field(None, gt=0, le=3600, description="Highest canary p99 latency.")
    max_p99_ratio: float | None = Field(
        None, gt=0, le=1000, description="Highest canary p99 divided by stable's p99."
    )
    max_output_psi: float | None = Field(
        0.2,
        gt=0,
        le=100,
        description="Highest PSI of the canary's prediction distribution against stable's "
        "(predicted classes, or prediction histogram buckets).",
    )


class CanaryAnalysis(ApiModel):
    """Stepped weights with checks (Argo Rollouts / Flagger): each step holds its weight for a warm-up
    and at least one interval; too little traffic is inconclusive (the step is held, never passed)."""

    steps: list[Percent] = Field(
        [5, 10, 25, 50],
        min_length=1,
        max_length=20,
        description="Canary weights (percent of requests), strictly increasing; after the last one passes "
        "the canary is promoted.",
        json_schema_extra=validations([STEPS_RULE]),
    )
    interval_seconds: int = Field(60, ge=1, le=86400, description="Time between analyses of a step.")
    warmup_seconds: int = Field(
        30, ge=0, le=86400, description="Requests of a step's first seconds are not analysed."
    )
    min_requests: int = Field(
        100, ge=1, description="Fewer canary requests in the window: inconclusive (the step is held)."
    )
    failure_limit: int = Field(
        0, ge=0, le=100, description="Failed analyses tolerated; one more rolls the canary back."
    )
    checks: CanaryChecks = Field(default_factory=CanaryChecks)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(STEPS_RULE["message"])
        return steps


class Canary(ApiModel):
    """A second model that the stable servers forward an exact share of requests to (per request, not
    per pod): a fixed `trafficPercent`, or `analysis` walking steps and promoting or rolling back."""

    model_config = ConfigDict(json_schema_extra=validations([CANARY_MODE_RULE]))

    model: ModelSource
    traffic_percent: int | None = Field(None, ge=0, le=100, description="A fixed weight, no analysis.")
    analysis: CanaryAnalysis | None = None
    paused: bool = Field(False, description="Hold the current weight; no analysis until resumed.")
    abort: bool = Field(
        False, description="Weight 0 and the canary scaled down, as a rollback; unset it to start again."
    )

    @model_validator(mode="after")
    def _one_mode(self) -> Canary:
        if (self.traffic_percent is None) == (self.analysis is None):
            raise ValueError(CANARY_MODE_RULE["message"])
        return self


class Shadow(ApiModel):
    """A model that sees a copy of `percent` of the requests stable answers (fire and forget): its
    answers are compared with stable's and never returned."""

    model: ModelSource
    percent: Percent = Field(description="Percent of the requests stable answers that are mirrored.")
    queue_size: int = Field(
        1000, ge=1, le=100000, description="Copies waiting to be sent per stable server; beyond it dropped."
    )


#: Tracks of their own, and `grpc` (the headless Service `<name>-grpc`).
RESERVED_NAMES = ("stable", "canary", "shadow", "explainer", "grpc")
MAX_VARIANTS = 10
MAX_VARIANT_NAME = 30  # `<name>-<variant>` stays a DNS label, shortened with a hash, for any name
CONTROL_RULE = {
    "rule": "self.exists_one(v, !has(v.model))",
    "message": "exactly one variant has no model: the control arm, served by the stable track (spec.model)",
}
VARIANT_NAMES_RULE = {
    "rule": "self.all(x, self.exists_one(y, y.name == x.name))",
    "message": "variant names must be unique",
}
WEIGHTS_RULE = {
    "rule": "self.map(v, v.weightPercent).sum() == 100",
    "message": "variants' weightPercent must sum to 100",
}
RESERVED_RULE = {
    "rule": "!(self.name in ['stable', 'canary', 'shadow', 'explainer', 'grpc'])",
    "message": "a variant cannot be named stable, canary, shadow, explainer or grpc "
    "(tracks and Services of their own)",
}
ONE_SPLIT_RULE = {
    "rule": "!has(self.canary) || !has(self.abTest)",
    "message": "canary and abTest cannot split the same traffic: set at most one of them",
}


class ABVariant(ApiModel):
    """One arm of an A/B test: its own Deployment and Service `<name>-<variant>`, or, without a model,
    the control arm that the stable track serves itself."""

    model_config = ConfigDict(json_schema_extra=validations([RESERVED_RULE]))

    name: str = Field(
        min_length=1,
        max_length=MAX_VARIANT_NAME,
        pattern=DNS_LABEL_PATTERN,
        description="A DNS label: the arm's track (answers' x-kubeloop-track, metrics' track label).",
    )
    model: ModelSource | None = Field(None, description="Unset: the control arm (the stable track).")
    weight_percent: int = Field(ge=0, le=100, description="Share of requests (of sticky header values).")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_NAMES:
            raise ValueError(RESERVED_RULE["message"])
        return name


class ABTest(ApiModel):
    """A fixed split of requests between arms, sticky per value of a request header (a hash of it;
    requests without the header are split by weight). Excludes a canary."""

    header: str = Field(
        min_length=1, max_length=256, pattern=r"^[A-Za-z0-9-]+$", description="e.g. x-user-id"
    )
    variants: list[ABVariant] = Field(
        min_length=2,
        max_length=MAX_VARIANTS,
        description="The arms, weights summing to 100; exactly one without a model (the control arm).",
        json_schema_extra=validations([VARIANT_NAMES_RULE, CONTROL_RULE, WEIGHTS_RULE]),
    )

    @field_validator("variants")
    @classmethod
    def _arms(cls, variants: list[ABVariant]) -> list[ABVariant]:
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError(VARIANT_NAMES_RULE["message"])
        if sum(v.model is None for v in variants) != 1:
            raise ValueError(CONTROL_RULE["message"])
        if sum(v.weight_percent for v in variants) != 100:
            raise ValueError(WEIGHTS_RULE["message"])
        return variants

    @property
    def control(self) -> ABVariant:
        return next(v for v in self.variants if v.model is None)

    @property
    def arms(self) -> list[ABVariant]:
        """The variants with a model of their own (a Deployment each)."""
        return [v for v in self.variants if v.model is not None]


class ModelDeploymentSpec(PodEnvironment):
    """Desired state of a ModelDeployment."""

    model_config = ConfigDict(json_schema_extra=validations([ONE_SPLIT_RULE]))

    model: ModelSource
    image: str | None = Field(
        None, min_length=1, pattern=IMAGE_PATTERN, description="Server image; default: the operator's."
    )
    replicas: Replicas = Field(default_factory=Replicas)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    resources: Resources = Field(default_factory=Resources)
    batching: Batching = Field(default_factory=Batching)
    grpc: Grpc = Field(default_factory=Grpc)
    data_plane: Literal["python", "native"] = Field(
        "python",
        description="native: kubeloop-dataplane (Rust) answers REST JSON inference for numeric models "
        "in front of the Python server, which answers everything else (errors, the binary extension, "
        "explanations, metadata, gRPC) and keeps the metrics whole. Inference goes through Python while "
        "a canary, shadow or A/B test is routed; not used with payloadLogging.",
    )
    payload_logging: PayloadLogging | None = None
    explain: Explain | None = None
    canary: Canary | None = None
    shadow: Shadow | None = None
    ab_test: ABTest | None = None
    registry_poll_seconds: int = Field(
        60, ge=5, le=86400, description="How often models:/ aliases are re-resolved."
    )

    @model_validator(mode="after")
    def _one_split(self) -> ModelDeploymentSpec:
        if self.canary is not None and self.ab_test is not None:
            raise ValueError(ONE_SPLIT_RULE["message"])
        return self
