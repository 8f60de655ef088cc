"""ModelDeployment: autoscaled ONNX inference servers speaking Open Inference Protocol v2."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from kubeloop.api.common import (
    IMAGE_PATTERN,
    MODEL_URI_PATTERN,
    SINK_URI_PATTERN,
    ApiModel,
    Condition,
    Name,
    PodEnvironment,
    Resources,
    conditions_field,
)

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


class Autoscaling(ApiModel):
    target_cpu_utilization: int = Field(70, ge=1, le=100, description="Average CPU % of requests.")
    scale_down_stabilization_seconds: int = Field(
        300, ge=0, le=3600, description="Scale down only to the highest recommendation of this window."
    )


class Batching(ApiModel):
    """Adaptive batching: merge what is queued, up to a size, waiting at most maxWaitMs."""

    max_batch_size: int = Field(32, ge=1, le=4096, description="1 turns batching off.")
    max_wait_ms: float = Field(2.0, ge=0, le=1000)


class PayloadLogging(ApiModel):
    """Sampled request/response logging to Parquet, read by DriftMonitor."""

    sink_uri: str = Field(pattern=SINK_URI_PATTERN, description="s3:// or a directory (file:// or a path).")
    sample_rate: float = Field(1.0, ge=0, le=1)
    persistent_volume_claim: Name | None = Field(
        None, description="PVC mounted at the sink directory (for file sinks shared with DriftMonitor)."
    )


class Canary(ApiModel):
    """A second model taking a share of traffic (by replica share behind the one Service)."""

    model: ModelSource
    traffic_percent: int = Field(ge=0, le=100)


class ModelDeploymentSpec(PodEnvironment):
    """Desired state of a ModelDeployment."""

    model: ModelSource
    image: str | None = Field(
        None, min_length=1, pattern=IMAGE_PATTERN, description="Server image; default: the operator's."
    )
    replicas: Replicas = Field(default_factory=Replicas)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    resources: Resources = Field(default_factory=Resources)
    batching: Batching = Field(default_factory=Batching)
    payload_logging: PayloadLogging | None = None
    canary: Canary | None = None
    registry_poll_seconds: int = Field(
        60, ge=5, le=86400, description="How often models:/ aliases are re-resolved."
    )


class ResolvedModel(ApiModel):
    uri: str
    version: str | None = None


class ModelDeploymentStatus(ApiModel):
    observed_generation: int | None = None
    replicas: int = 0
    ready_replicas: int = 0
    url: str | None = None
    model: ResolvedModel | None = None
    canary_model: ResolvedModel | None = None
    conditions: list[Condition] = conditions_field()
