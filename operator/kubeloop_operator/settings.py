"""Operator settings: one typed object, read once from KUBELOOP_OPERATOR_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """Everything the operator needs besides the resources themselves."""

    model_config = SettingsConfigDict(env_prefix="KUBELOOP_OPERATOR_", frozen=True)

    serving_image: str = Field("kubeloop/kubeloop:0.1.0", description="Default image of inference servers.")
    trainer_image: str = Field("kubeloop/trainer:0.1.0", description="Default image of the built-in trainer.")
    drift_image: str = Field("kubeloop/kubeloop:0.1.0", description="Default image of drift-check jobs.")
    image_pull_policy: str = Field("IfNotPresent", description="Pull policy of every container rendered.")
    mlflow_tracking_uri: str = Field(
        "http://mlflow.kubeloop-system.svc:5000", description="MLflow server injected into training pods."
    )
    mlflow_ui_url: str | None = Field(
        None, description="Base URL users open for MLflow links; default: tracking URI."
    )
    prometheus_url: str | None = Field(
        None, description="Prometheus that canary analysis queries (the chart's own when prometheus.enabled)."
    )
    namespaces: list[str] = Field(default_factory=list, description="Namespaces to watch; empty: all.")
    field_manager: str = Field("kubeloop-operator", description="Server-side apply field manager.")
    metrics_port: int = Field(9090, description="Port of the operator's Prometheus metrics.")
    resync_seconds: float = Field(
        60.0, gt=0, description="Unchanged children are applied again at most this long after the last apply."
    )
    service_monitors: bool | None = Field(
        None, description="Render ServiceMonitors; default: when the Prometheus operator's CRD exists."
    )
    cluster_domain: str = Field("cluster.local", description="DNS suffix for URLs in status.")
    scanning: bool = Field(
        True, description="Let kopf list namespaces/CRDs; off for a namespaced install whose RBAC forbids it."
    )
    worker_threads: int = Field(16, ge=1, description="Threads for synchronous API calls.")
    rollout_poll_seconds: float = Field(
        5.0, gt=0, description="How often ModelDeployments with a canary are reconciled (steps, analyses)."
    )
    progress_poll_seconds: float = Field(
        12.0, gt=0, description="How often Pending and Running TrainingJobs are reconciled (pods, progress)."
    )
    routes_propagation_seconds: float = Field(
        90.0,
        ge=0,
        description="How long a weight change takes to reach every stable server (the kubelet's ConfigMap "
        "sync); a canary whose weight went to 0 keeps running this long.",
    )
