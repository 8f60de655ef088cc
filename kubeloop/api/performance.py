"""A DriftMonitor's ``spec.performance``: realized performance from delayed labels, per group and
fairness, and estimated performance (CBPE) while labels are missing; and the results the check
reports (the drift check's summary and ``status.performance``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from kubeloop.api.common import DATA_URI_PATTERN, ApiModel
from kubeloop.api.labels import validations
from kubeloop.contracts.payload_log import ATTRIBUTE_NAME_PATTERN

Task = Literal["binary", "multiclass", "regression"]
MetricName = Literal["accuracy", "f1", "roc_auc", "mae", "rmse"]
FairnessMetric = Literal["demographic_parity_difference", "equalized_odds_difference"]
#: error metrics: the threshold is a maximum; for the others a minimum
LOWER_IS_BETTER = ("mae", "rmse")
CLASSIFICATION_ONLY = ("accuracy", "f1", "roc_auc")
MATURITY_PATTERN = r"^(0|[1-9][0-9]{0,4}(s|m|h|d))$"

PERFORMANCE_RULES: list[dict[str, str]] = [
    {
        "rule": "self.task != 'regression' || self.metrics.all(m, m.metric in ['mae', 'rmse'])",
        "message": "metrics: a regression task takes mae and rmse only",
    },
    {
        "rule": "self.task == 'regression' || self.metrics.all(m, !(m.metric in ['mae', 'rmse']))",
        "message": "metrics: a classification task takes accuracy, f1 and roc_auc only",
    },
    {
        "rule": "self.task == 'binary' || !has(self.fairness) || size(self.fairness) == 0",
        "message": "fairness: demographic parity and equalized odds need a binary task",
    },
    {
        "rule": "has(self.score) || !self.metrics.exists(m, m.metric == 'roc_auc')",
        "message": "metrics: roc_auc needs score (the output holding the positive class's probability)",
    },
]


class MetricThreshold(ApiModel):
    metric: MetricName
    threshold: float | None = Field(
        None,
        ge=0,
        description="Performance is degraded below this (accuracy, f1, roc_auc: a minimum in [0, 1]) "
        "or above it (mae, rmse: a maximum); unset = reported only.",
    )


class FairnessThreshold(ApiModel):
    metric: FairnessMetric
    max: float = Field(ge=0, le=1, description="Breached when the difference between groups exceeds this.")


class PerformanceConfig(ApiModel):
    """How a monitor measures performance: labels, maturity, task, metrics, groups and fairness."""

    model_config = ConfigDict(json_schema_extra=validations(PERFORMANCE_RULES))

    labels_uri: str | None = Field(
        None,
        pattern=DATA_URI_PATTERN,
        description="Ground truth (Parquet: request_id, [row,] label, [timestamp]; "
        "kubeloop.contracts.labels); default: where the target's servers write the labels posted to "
        "their feedback endpoint ({payload sink}/_labels/{model}).",
    )
    maturity: str = Field(
        "1h",
        pattern=MATURITY_PATTERN,
        description="How long after a prediction its label is expected (e.g. 30m, 24h, 7d; 0 = at once); "
        "younger predictions are left out of label coverage and realized performance.",
    )
    task: Task = Field(description="binary, multiclass or regression.")
    prediction: str = Field(
        "label",
        min_length=1,
        max_length=1024,
        description="The model output holding the predicted class or value (payload-log _output.{name}).",
    )
    score: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="Binary: the output column holding the positive class's probability, e.g. "
        "probabilities.1 (ROC AUC and the CBPE estimate need it).",
    )
    metrics: list[MetricThreshold] = Field(
        default_factory=list,
        max_length=5,
        description="Metrics and their thresholds; default: accuracy, f1 (+ roc_auc with a score), "
        "or mae, rmse for regression.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["metric"]},
    )
    sensitive_attributes: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Attributes passed with requests (parameters.attributes) to measure per group.",
        json_schema_extra={
            "items": {"type": "string", "pattern": ATTRIBUTE_NAME_PATTERN},
            "x-kubernetes-list-type": "set",
        },
    )
    fairness: list[FairnessThreshold] = Field(
        default_factory=list,
        max_length=2,
        description="Largest allowed differences between groups (binary tasks).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["metric"]},
    )
    min_group_size: int = Field(
        30, ge=1, le=1_000_000, description="Smaller groups are reported but left out of fairness."
    )
    bootstrap_samples: int = Field(
        200, ge=0, le=10_000, description="Resamples for 95% confidence intervals (0 = none)."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the bootstrap.")

    @field_validator("sensitive_attributes")
    @classmethod
    def _attribute_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.match(ATTRIBUTE_NAME_PATTERN, name):
                raise ValueError(f"sensitive attribute {name!r} is not a valid attribute name")
        if len(set(names)) != len(names):
            raise ValueError("each sensitive attribute at most once")
        return names

    @model_validator(mode="after")
    def _metrics_fit_the_task(self) -> PerformanceConfig:
        names = [m.metric for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metrics: each metric at most once")
        if self.task == "regression" and any(n in CLASSIFICATION_ONLY for n in names):
            raise ValueError(PERFORMANCE_RULES[0]["message"])
        if self.task != "regression" and any(n in LOWER_IS_BETTER for n in names):
            raise ValueError(PERFORMANCE_RULES[1]["message"])
        if self.task != "binary" and self.fairness:
            raise ValueError(PERFORMANCE_RULES[2]["message"])
        if self.score is None and "roc_auc" in names:
            raise ValueError(PERFORMANCE_RULES[3]["message"])
        return self

    def metric_names(self) -> list[str]:
        """The configured metrics, else the task's defaults."""
        if self.metrics:
            return [m.metric for m in self.metrics]
        if self.task == "regression":
            return ["mae", "rmse"]
        defaults = ["accuracy", "f1"]
        return [*defaults, "roc_auc"] if self.task == "binary" and self.score else defaults

    def threshold_of(self, metric: str) -> float | None:
        return next((m.threshold for m in self.metrics if m.metric == metric), None)


class MetricValue(ApiModel):
    metric: MetricName
    source: Literal["realized", "estimated"]
    value: float | None = None
    lower: float | None = Field(None, description="95% bootstrap interval (realized).")
    upper: float | None = None
    threshold: float | None = None
    breached: bool = False


class GroupPerformance(ApiModel):
    attribute: str
    group: str
    rows: int
    included: bool = Field(description="False: smaller than minGroupSize, left out of fairness.")
    metrics: dict[str, float | None] = Field(default_factory=dict)


class FairnessValue(ApiModel):
    attribute: str
    metric: FairnessMetric
    value: float | None = None
    threshold: float | None = None
    breached: bool = False


class PerformanceResult(ApiModel):
    """What one check found: realized and estimated metrics, coverage, groups and fairness."""

    task: Task
    predictions: int
    matured: int
    labelled: int
    early_labels: int = 0
    label_coverage: float | None = None
    metrics: list[MetricValue] = Field(default_factory=list)
    groups: list[GroupPerformance] = Field(default_factory=list)
    fairness: list[FairnessValue] = Field(default_factory=list)
    degraded: bool = False
    message: str | None = None
    error: str | None = Field(
        None, description="Why performance could not be measured (the drift verdict stands regardless)."
    )
