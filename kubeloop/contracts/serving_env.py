"""The environment of an inference server: rendered by the operator, read by ``kubeloop serve``.

Every name is ``KUBELOOP_SERVING_`` + the field name in upper case (but ``MLFLOW_TRACKING_URI``, the
standard name mlflow reads too); the server's settings class (kubeloop_serving.settings.ServingSettings)
reads the same names and has a field for each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

ENV_PREFIX = "KUBELOOP_SERVING_"
MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
UNPREFIXED = {"mlflow_tracking_uri": MLFLOW_TRACKING_URI}


def env_name(field: str) -> str:
    return UNPREFIXED.get(field, ENV_PREFIX + field.upper())


@dataclass(frozen=True)
class ServerEnv:
    """What the operator tells each server; None leaves the server's default."""

    model_uri: str
    model_name: str
    port: int
    max_batch_size: int
    max_batch_wait_ms: float
    model_version: str | None = None
    mlflow_tracking_uri: str | None = None
    model_sha256: str | None = None
    payload_log_uri: str | None = None
    payload_log_sample_rate: float | None = None
    labels_uri: str | None = None
    routes_file: str | None = None
    track: str | None = None
    explain_enabled: bool | None = None
    explain_method: str | None = None
    explain_background_uri: str | None = None
    explain_background_rows: int | None = None
    explain_budget: int | None = None
    grpc_port: int | None = None  # 0: no gRPC
    max_batch_run_ms: float | None = None
    dataplane: str | None = None

    def to_env(self) -> dict[str, str]:
        """The variables, by name, in field order."""
        return {env_name(k): env_value(v) for k, v in asdict(self).items() if v is not None}


def env_value(value: object) -> str:
    """How a value is spelled in the environment (booleans lower case, as pydantic reads them)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
