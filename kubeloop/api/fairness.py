"""The fairness gate of a TrainingJob: which columns are sensitive, the thresholds, and the verdict.

Sensitive attributes are columns of the dataset that are never model inputs: the trainer keeps
them out of the features and carries them through the split. On the test split, fairlearn's
``MetricFrame`` gives per-group metrics of the exported model; the demographic parity difference
and the equalized odds difference are taken over the groups with at least ``minGroupSize`` rows
(smaller groups are reported, marked excluded). A difference above its threshold blocks the
registration of the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from kubeloop.api.common import ApiModel
from kubeloop.api.labels import validations

if TYPE_CHECKING:
    from kubeloop.api.training import TrainingJobSpec

#: Passed: every difference within its threshold; Failed: at least one above;
#: NotEvaluable: fewer than two groups have minGroupSize rows (fails too: nothing was shown fair).
FairnessOutcome = Literal["Passed", "Failed", "NotEvaluable"]
FairnessMetric = Literal["demographicParityDifference", "equalizedOddsDifference"]
MAX_ATTRIBUTES = 8
MAX_COLUMN_NAME = 253
ColumnName = Annotated[str, Field(min_length=1, max_length=MAX_COLUMN_NAME)]

NEEDS_CLASSIFICATION = "fairness needs builtin.task classification"
FAIRNESS_NEEDS_BUILTIN = "fairness is measured by the built-in trainer: remove spec.command"
NOT_THE_TARGET = "fairness.sensitiveAttributes must not name dataset.targetColumn"
NEEDS_A_THRESHOLD = "fairness.thresholds needs demographicParityDifference or equalizedOddsDifference"

#: Rules on TrainingJobSpec, as CEL for the API server; `fairness_spec_problem` is the same in Python.
FAIRNESS_SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": "!has(self.fairness) || !has(self.builtin) || !has(self.builtin.task)"
        " || self.builtin.task == 'classification'",
        "message": NEEDS_CLASSIFICATION,
    },
    {"rule": "!has(self.fairness) || !has(self.command)", "message": FAIRNESS_NEEDS_BUILTIN},
    {
        "rule": "!has(self.fairness) || !has(self.dataset)"
        " || !((has(self.dataset.targetColumn) ? self.dataset.targetColumn : 'label')"
        " in self.fairness.sensitiveAttributes)",
        "message": NOT_THE_TARGET,
    },
]


def fairness_spec_problem(spec: TrainingJobSpec) -> str | None:
    """What FAIRNESS_SPEC_RULES refuse in ``spec``, with the same message; None when it is fine."""
    fairness = spec.fairness
    if fairness is None:
        return None
    if spec.builtin.task != "classification":
        return NEEDS_CLASSIFICATION
    if spec.command is not None:
        return FAIRNESS_NEEDS_BUILTIN
    if spec.dataset is not None and spec.dataset.target_column in fairness.sensitive_attributes:
        return NOT_THE_TARGET
    return None


class FairnessThresholds(ApiModel):
    """Largest acceptable differences between groups (0: identical, 1: as different as can be)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            [
                {
                    "rule": "has(self.demographicParityDifference) || has(self.equalizedOddsDifference)",
                    "message": NEEDS_A_THRESHOLD,
                }
            ]
        )
    )

    demographic_parity_difference: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Largest gap in selection rate (share predicted positive) between two groups.",
    )
    equalized_odds_difference: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Largest gap in true positive rate or false positive rate between two groups.",
    )

    @model_validator(mode="after")
    def _one_threshold(self) -> FairnessThresholds:
        if self.demographic_parity_difference is None and self.equalized_odds_difference is None:
            raise ValueError(NEEDS_A_THRESHOLD)
        return self


class Fairness(ApiModel):
    """Fairness gate: per-group metrics on the test split; a threshold exceeded blocks registration."""

    sensitive_attributes: list[ColumnName] = Field(
        min_length=1,
        max_length=MAX_ATTRIBUTES,
        description="Dataset columns that define the groups; never model inputs. Several columns: "
        "their intersections are the groups (sex=F, age_band=young).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    thresholds: FairnessThresholds
    positive_class: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_COLUMN_NAME,
        description="The favourable outcome whose rates are compared, as text (approved, 1). Default: "
        "the second of the sorted classes; with more than two classes, every class in turn.",
    )
    min_group_size: int = Field(
        30,
        ge=1,
        le=1_000_000,
        description="Groups with fewer test rows are reported but left out of the differences.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> Fairness:
        if len(set(self.sensitive_attributes)) != len(self.sensitive_attributes):
            raise ValueError("fairness.sensitiveAttributes names a column twice")
        return self


class GroupMetrics(ApiModel):
    """One group's metrics on the test split (rates of ``positiveClass``)."""

    group: str = Field(description="attribute=value, joined by ', ' for several attributes.")
    count: int
    accuracy: float
    selection_rate: float
    true_positive_rate: float
    false_positive_rate: float
    excluded: bool = Field(False, description="Fewer rows than minGroupSize: not in the differences.")


class FairnessResult(ApiModel):
    """The fairness gate's verdict, as the trainer reports it and the TrainingJob status shows it."""

    outcome: FairnessOutcome
    sensitive_attributes: list[str]
    positive_class: str = Field(
        description="The class whose selection rate and TPR/FPR are compared: spec.fairness.positiveClass, "
        "else the second of the sorted classes for two classes; for more, the one (one-vs-rest) furthest "
        "over its thresholds."
    )
    rows: int = Field(description="Rows of the test split.")
    min_group_size: int
    demographic_parity_difference: float | None = None
    equalized_odds_difference: float | None = None
    thresholds: FairnessThresholds
    groups: list[GroupMetrics] = Field(default_factory=list, description="Largest groups first.")
    groups_omitted: int = Field(0, description="Groups left out to fit the termination message.")
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == "Passed"
