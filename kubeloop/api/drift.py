"""DriftMonitor: scheduled checks of live payloads against reference data; retrain on drift."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from kubeloop.api.common import (
    DATA_URI_PATTERN,
    SINK_URI_PATTERN,
    ApiModel,
    Condition,
    Name,
    PodEnvironment,
    Resources,
    conditions_field,
)
from kubeloop.api.training import TrainingJobSpec

StatTest = Literal["psi", "ks", "chi2", "wasserstein", "jensenshannon"]
CRON_PATTERN = (
    r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)"
    r"|([0-9*/,?LW#A-Za-z-]+\s+){4}[0-9*/,?LW#A-Za-z-]+)$"
)
DURATION_PATTERN = r"^[0-9]+(m|h|d)$"


class FeatureTest(ApiModel):
    """The test and threshold for one feature (or for every feature, with feature '*')."""

    feature: str = Field(min_length=1, description="Column name, or * for every column not listed.")
    test: StatTest = Field(description="psi, ks, chi2, wasserstein or jensenshannon.")
    threshold: float | None = Field(
        None, ge=0, description="Drift when score >= threshold (p-value tests: when p < threshold)."
    )


class DriftCheckConfig(ApiModel):
    """What a drift check computes: the part of a DriftMonitor the check job needs."""

    tests: list[FeatureTest] = Field(
        default_factory=list, description="Overrides; others use a default test chosen by type and size."
    )
    drift_share: float = Field(
        0.5, gt=0, le=1, description="Dataset drift when this share of features drifts."
    )
    features: list[str] | None = Field(
        None, description="Columns to check; default: the reference's columns."
    )


class Window(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.duration) != has(self.lastRows)",
                    "message": "set exactly one of duration, lastRows",
                }
            ]
        }
    )
    duration: str | None = Field(None, pattern=DURATION_PATTERN, description="e.g. 30m, 24h, 7d.")
    last_rows: int | None = Field(None, ge=1, le=100_000_000)


class Target(ApiModel):
    model_deployment: Name


class Reference(ApiModel):
    uri: str = Field(
        pattern=DATA_URI_PATTERN, description="Reference data (Parquet/CSV), e.g. training data."
    )


class TrainingJobTemplate(ApiModel):
    labels: dict[str, str] = Field(default_factory=dict)
    spec: TrainingJobSpec


class DriftAction(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type != 'Retrain' || has(self.trainingJobTemplate)",
                    "message": "action Retrain needs trainingJobTemplate",
                }
            ]
        }
    )
    type: Literal["Alert", "Retrain"] = "Alert"
    cooldown_seconds: int = Field(
        3600, ge=0, le=30 * 86400, description="No second retrain within this time."
    )
    training_job_template: TrainingJobTemplate | None = None


class DriftMonitorSpec(DriftCheckConfig, PodEnvironment):
    """Desired state of a DriftMonitor."""

    target: Target
    reference: Reference
    schedule: str = Field("0 * * * *", pattern=CRON_PATTERN, description="Cron schedule of the check.")
    window: Window = Field(default_factory=lambda: Window(duration="24h"))
    report_uri: str | None = Field(
        None,
        pattern=SINK_URI_PATTERN,
        description="Where HTML/JSON reports go; default: beside the payload log.",
    )
    image: str | None = Field(None, min_length=1)
    resources: Resources = Field(default_factory=Resources)
    action: DriftAction = Field(default_factory=DriftAction)
    suspend: bool = False


class FeatureResult(ApiModel):
    name: str
    test: StatTest
    score: float
    threshold: float
    drifted: bool


class DriftMonitorStatus(ApiModel):
    observed_generation: int | None = None
    last_check_time: datetime | None = None
    last_check_job: str | None = None
    drift_share: float | None = None
    dataset_drift: bool | None = None
    features: list[FeatureResult] = Field(default_factory=list)
    report_uri: str | None = None
    checks_succeeded: int = 0
    checks_failed: int = 0
    last_triggered_training_job: str | None = None
    last_triggered_time: datetime | None = None
    conditions: list[Condition] = conditions_field()
