"""The kubeloop.io/v1alpha1 API: typed specs and statuses, the single source of truth for the CRDs."""

from kubeloop.api.common import API_VERSION, GROUP, VERSION
from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.api.deployment_status import ModelDeploymentStatus
from kubeloop.api.drift import DriftCheckConfig, DriftMonitorSpec, DriftMonitorStatus, FeatureTest
from kubeloop.api.training import TrainingJobSpec, TrainingJobStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "DriftCheckConfig",
    "DriftMonitorSpec",
    "DriftMonitorStatus",
    "FeatureTest",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "TrainingJobSpec",
    "TrainingJobStatus",
]
