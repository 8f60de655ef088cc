"""DriftMonitor: scheduled checks of live payloads against reference data; retrain on drift."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from kubeloop.api.common import (
    DATA_URI_PATTERN,
    IMAGE_PATTERN,
    SINK_URI_PATTERN,
    ApiModel,
    Condition,
    Name,
    PodEnvironment,
    Resources,
    conditions_field,
)
from kubeloop.api.cron import CRON_PATTERN, CRON_RANGE_RULE, MAX_CRON_LENGTH, cron_problem
from kubeloop.api.labels import LabelMap, label_map_field, validations
from kubeloop.api.performance import PerformanceConfig, PerformanceResult
from kubeloop.api.training import TrainingJobSpec

StatTest = Literal["psi", "ks", "chi2", "wasserstein", "jensenshannon"]
#: A positive whole number of minutes, hours or days (at most 99999: a window has to fit in a calendar).
DURATION_PATTERN = r"^[1-9][0-9]{0,4}(m|h|d)$"
P_VALUE_TESTS = ("ks", "chi2")
#: The largest Jensen-Shannon distance (natural log): sqrt(ln 2); a larger threshold never drifts.
JS_DISTANCE_MAX = 0.8325546111576977
MAX_TESTS = 256
MAX_FEATURES = 4096
DEFAULT_WINDOW = "24h"

THRESHOLD_RULES: list[dict[str, str]] = [
    {
        "rule": "!has(self.threshold) || !(self.test in ['ks', 'chi2']) || self.threshold <= 1.0",
        "message": "threshold: a p-value threshold (ks, chi2) must be in (0, 1]",
    },
    {
        "rule": "!has(self.threshold) || self.test != 'jensenshannon'"
        f" || self.threshold <= {JS_DISTANCE_MAX}",
        "message": f"threshold: a Jensen-Shannon distance is at most {JS_DISTANCE_MAX} (sqrt(ln 2)); "
        "a larger threshold never drifts",
    },
]


class FeatureTest(ApiModel):
    """The test and threshold for one feature (or for every feature, with feature '*')."""

    model_config = ConfigDict(json_schema_extra=validations(THRESHOLD_RULES))

    feature: str = Field(
        min_length=1, max_length=1024, description="Column name, or * for every column not listed."
    )
    test: StatTest = Field(description="psi, ks, chi2, wasserstein or jensenshannon.")
    threshold: float | None = Field(
        None,
        gt=0,
        description="Drift when score >= threshold (p-value tests: when p < threshold); > 0, at most 1 "
        f"for p-values (ks, chi2), at most {JS_DISTANCE_MAX} for jensenshannon.",
    )

    @model_validator(mode="after")
    def _threshold_in_domain(self) -> FeatureTest:
        if self.threshold is None:
            return self
        if self.test in P_VALUE_TESTS and self.threshold > 1:
            raise ValueError(THRESHOLD_RULES[0]["message"])
        if self.test == "jensenshannon" and self.threshold > JS_DISTANCE_MAX:
            raise ValueError(THRESHOLD_RULES[1]["message"])
        return self


def _first_duplicate(values: list[str]) -> str | None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


class DriftCheckConfig(ApiModel):
    """What a drift check computes: the part of a DriftMonitor the check job needs."""

    tests: list[FeatureTest] = Field(
        default_factory=list,
        max_length=MAX_TESTS,
        description="Overrides; others use a default test chosen by type and size. One entry per feature.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["feature"]},
    )
    drift_share: float = Field(
        0.5, gt=0, le=1, description="Dataset drift when this share of features drifts."
    )
    features: list[str] | None = Field(
        None,
        max_length=MAX_FEATURES,
        description="Columns to check; default: the reference's columns. Each at most once.",
        json_schema_extra={
            "items": {"type": "string", "minLength": 1, "maxLength": 1024},
            "x-kubernetes-list-type": "set",
        },
    )
    performance: PerformanceConfig | None = Field(
        None,
        description="Also measure performance: realized from delayed labels joined by request id, "
        "per group and fairness, and estimated (CBPE) while labels are missing; needs the payload log.",
    )

    @field_validator("tests")
    @classmethod
    def _one_entry_per_feature(cls, tests: list[FeatureTest]) -> list[FeatureTest]:
        twice = _first_duplicate([t.feature for t in tests])
        if twice is not None:
            raise ValueError(f"feature {twice!r} is configured twice; each feature (and *) only once")
        return tests

    @field_validator("features")
    @classmethod
    def _features_once(cls, features: list[str] | None) -> list[str] | None:
        twice = _first_duplicate(features or [])
        if twice is not None:
            raise ValueError(f"feature {twice!r} is listed twice")
        return features


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
    labels: LabelMap = label_map_field("Labels of the TrainingJobs created on drift.")
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
    schedule: str = Field(
        "0 * * * *",
        max_length=MAX_CRON_LENGTH,
        pattern=CRON_PATTERN,
        description="Cron schedule of the check, as a CronJob's: minute 0-59, hour 0-23, day 1-31, "
        "month 1-12 or JAN-DEC, weekday 0-6 or SUN-SAT, separated by single spaces; or @hourly etc.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": CRON_RANGE_RULE, "message": "schedule: a range a-b needs a <= b"}
            ]
        },
    )
    window: Window = Field(default_factory=lambda: Window(duration=DEFAULT_WINDOW))
    report_uri: str | None = Field(
        None,
        pattern=SINK_URI_PATTERN,
        description="Where HTML/JSON reports go; default: beside the payload log.",
    )
    image: str | None = Field(None, min_length=1, pattern=IMAGE_PATTERN)
    resources: Resources = Field(default_factory=Resources)
    action: DriftAction = Field(default_factory=DriftAction)
    suspend: bool = False

    @field_validator("schedule")
    @classmethod
    def _cron(cls, schedule: str) -> str:
        problem = cron_problem(schedule)
        if problem is not None:
            raise ValueError(problem)
        return schedule


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
    performance: PerformanceResult | None = None
    conditions: list[Condition] = conditions_field()
