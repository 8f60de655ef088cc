"""The champion/challenger gate of a TrainingJob: what it compares, and the verdict it reaches.

The trainer scores the new model and the champion (the ONNX file the registry URI resolves to,
the one the servers load) with onnxruntime on the same evaluation data. The new version gets
``register.alias`` only when ``challenger`` is at least as good as ``champion`` by ``margin``
in the metric's direction; otherwise it is registered without an alias and nothing moves.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from kubeloop.api.common import DATA_URI_PATTERN, ApiModel

if TYPE_CHECKING:
    from kubeloop.api.training import TrainingJobSpec

ChallengeMetric = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "loss", "rmse", "mae", "r2"]
Direction = Literal["maximize", "minimize"]
#: Passed: the challenger is at least as good; FirstModel: there is no champion yet (passes);
#: NotBeaten: the champion is better; NotComparable: the two cannot be scored on this data.
GateOutcome = Literal["Passed", "FirstModel", "NotBeaten", "NotComparable"]
PASSING: frozenset[GateOutcome] = frozenset({"Passed", "FirstModel"})

CLASSIFICATION_METRICS: tuple[ChallengeMetric, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "loss",
)
REGRESSION_METRICS: tuple[ChallengeMetric, ...] = ("rmse", "mae", "r2", "loss")
LOWER_IS_BETTER: frozenset[str] = frozenset({"loss", "rmse", "mae"})

CHAMPION_URI_PATTERN = r"^models:/[^/@]+(/[0-9]+|@[A-Za-z0-9_-]+)$"
CHAMPION_URI_MESSAGE = "challenge.champion must be a registry URI: models:/name@alias or models:/name/version"


def direction_of(metric: str) -> Direction:
    """Whether a higher or a lower value of ``metric`` is better."""
    return "minimize" if metric in LOWER_IS_BETTER else "maximize"


def _cel_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


NEEDS_ALIAS = "challenge needs register with an alias: the alias the challenger gets when it wins"
NEEDS_BUILTIN = "challenge is run by the built-in trainer: remove spec.command"
NOT_CHAMPION_ALIAS = (
    "register.alias must not be the champion's alias: the gate names a challenger,"
    " promotion moves the champion"
)
METRIC_FITS_TASK = (
    f"challenge.metric must suit builtin.task: classification takes {', '.join(CLASSIFICATION_METRICS)}; "
    f"regression takes {', '.join(REGRESSION_METRICS)}"
)

#: Rules on TrainingJobSpec, as CEL for the API server; `challenge_spec_problem` is the same in Python.
CHALLENGE_SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": "!has(self.challenge) || (has(self.register) && has(self.register.alias))",
        "message": NEEDS_ALIAS,
    },
    {"rule": "!has(self.challenge) || !has(self.command)", "message": NEEDS_BUILTIN},
    {
        "rule": "!has(self.challenge) || !has(self.register) || !has(self.register.alias)"
        " || self.challenge.champion != 'models:/' + self.register.modelName + '@' + self.register.alias",
        "message": NOT_CHAMPION_ALIAS,
    },
    {
        "rule": "!has(self.challenge) || (has(self.builtin) && self.builtin.task == 'regression'"
        f" ? self.challenge.metric in {_cel_list(REGRESSION_METRICS)}"
        f" : self.challenge.metric in {_cel_list(CLASSIFICATION_METRICS)})",
        "message": METRIC_FITS_TASK,
    },
]


def challenge_spec_problem(spec: TrainingJobSpec) -> str | None:
    """What CHALLENGE_SPEC_RULES refuse in ``spec``, with the same message; None when it is fine."""
    challenge, registration = spec.challenge, spec.registration
    if challenge is None:
        return None
    if registration is None or registration.alias is None:
        return NEEDS_ALIAS
    if spec.command is not None:
        return NEEDS_BUILTIN
    if challenge.champion == f"models:/{registration.model_name}@{registration.alias}":
        return NOT_CHAMPION_ALIAS
    allowed = REGRESSION_METRICS if spec.builtin.task == "regression" else CLASSIFICATION_METRICS
    if challenge.metric not in allowed:
        return METRIC_FITS_TASK
    return None


class EvaluationDataset(ApiModel):
    """The data both models are scored on: a Parquet or CSV file or folder (the training data rules)."""

    uri: str = Field(pattern=DATA_URI_PATTERN, description="s3://, file://, https:// or an absolute path.")
    format: Literal["parquet", "csv"] | None = Field(None, description="Default: from the file extension.")
    target_column: str | None = Field(
        None, min_length=1, description="The column to predict; default: spec.dataset.targetColumn."
    )


class Challenge(ApiModel):
    """Champion/challenger gate: the alias moves only if the new model scores at least as well."""

    champion: str = Field(
        max_length=512,
        description="The model to beat, as a registry URI: models:/churn@champion or models:/churn/3. "
        "No such alias or model yet: the first model passes.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": f"self.matches('{CHAMPION_URI_PATTERN}')", "message": CHAMPION_URI_MESSAGE}
            ]
        },
    )
    dataset: EvaluationDataset
    metric: ChallengeMetric = Field(
        description="Compared on the evaluation data; rmse, mae and loss: lower is better, others higher."
    )
    margin: float = Field(
        0.0,
        ge=0,
        le=1e9,
        description="How much better the challenger must be (0: a tie passes), in the metric's units.",
    )

    @field_validator("champion")
    @classmethod
    def _registry_uri(cls, value: str) -> str:
        if not re.match(CHAMPION_URI_PATTERN, value):
            raise ValueError(CHAMPION_URI_MESSAGE)
        return value


class ChallengeResult(ApiModel):
    """The gate's verdict, as the trainer reports it and the TrainingJob status shows it."""

    outcome: GateOutcome
    metric: str
    direction: Direction
    margin: float = 0.0
    champion: str = Field(description="The champion's registry URI.")
    champion_version: str | None = Field(None, description="The version the URI resolved to.")
    champion_score: float | None = None
    challenger_score: float | None = None
    rows: int | None = Field(None, description="Rows of the evaluation data.")
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome in PASSING
