"""TrainingJob: train a model on GPUs, track it in MLflow, export ONNX, register a version."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from kubeloop.api.challenge import (
    CHALLENGE_SPEC_RULES,
    Challenge,
    ChallengeResult,
    challenge_spec_problem,
)
from kubeloop.api.common import (
    DATA_URI_PATTERN,
    IMAGE_PATTERN,
    MODEL_URI_PATTERN,
    ApiModel,
    Condition,
    PodEnvironment,
    Resources,
    conditions_field,
)
from kubeloop.api.data_sources import (
    DATASET_RULES,
    ONE_SOURCE,
    SHA256_PATTERN,
    SOURCE_FIELDS,
    DvcSource,
    FeastSource,
    LakeFsSource,
    Provenance,
)
from kubeloop.api.fairness import (
    FAIRNESS_SPEC_RULES,
    Fairness,
    FairnessResult,
    fairness_spec_problem,
)
from kubeloop.api.labels import validations
from kubeloop.api.processes import MAX_PROCESSES_PER_WORKER, PROCESSES_SPEC_RULES, processes_spec_problem
from kubeloop.api.progress import TrainingProgress
from kubeloop.api.study import PARALLELISM_RULES, StudyStorage, parallelism_problem

Algorithm = Literal["logistic_regression", "random_forest", "gradient_boosting", "mlp", "cnn"]
Task = Literal["classification", "regression"]


class Dataset(ApiModel):
    """Training data: a Parquet or CSV file or folder by URI, or a versioned source (exactly one)."""

    model_config = ConfigDict(json_schema_extra=validations(DATASET_RULES))
    uri: str | None = Field(
        None, pattern=DATA_URI_PATTERN, description="s3://, file://, https:// or an absolute path."
    )
    dvc: DvcSource | None = None
    lakefs: LakeFsSource | None = None
    feast: FeastSource | None = None
    format: Literal["parquet", "csv"] | None = Field(None, description="Default: from the file extension.")
    target_column: str = Field("label", min_length=1, description="The column to predict.")
    sha256: str | None = Field(
        None,
        pattern=SHA256_PATTERN,
        description="Pin: the data must have this sha256 (status.provenance.data.sha256), else BadData.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Dataset:
        if sum(getattr(self, name) is not None for name in SOURCE_FIELDS) != 1:
            raise ValueError(ONE_SOURCE)
        return self


class MlflowSettings(ApiModel):
    experiment: str | None = Field(None, description="MLflow experiment; default: the namespace.")
    tracking_uri: str | None = Field(
        None, pattern=r"^(https?|file)://.+$", description="Default: the operator's MLflow server."
    )


class Registration(ApiModel):
    """What to register in the MLflow model registry when training succeeds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.alias) || (self.alias.lowerAscii() != 'latest'"
                    " && !self.alias.matches('^[vV][0-9]+$'))",
                    "message": "alias 'latest' and aliases like 'v1' are reserved by MLflow",
                }
            ]
        }
    )

    model_name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    alias: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="e.g. champion")


class RunPolicy(ApiModel):
    """How the training Job is run, retried, bounded and cleaned up."""

    backoff_limit: int = Field(0, ge=0, le=100, description="Retries of a failed pod.")
    active_deadline_seconds: int | None = Field(
        None, ge=1, le=2**53, description="Wall-clock limit of the run."
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, le=2**31 - 1, description="Delete the Job this long after."
    )
    suspend: bool = Field(False, description="Create the Job suspended; resume by setting false.")
    restart_limit: int = Field(
        3,
        ge=0,
        le=100,
        description="workers > 1: gang restarts (all workers, resumed from the last epoch checkpoint) "
        "after a worker fails; 0 disables.",
    )


class Builtin(ApiModel):
    """The built-in trainer (`kubeloop train`), used when no command is given."""

    algorithm: Algorithm = "gradient_boosting"
    task: Task = "classification"
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    cross_validation_folds: int = Field(0, ge=0, le=20, description="0 disables k-fold cross-validation.")
    seed: int = 0
    class_balancing: bool = False
    early_stopping_patience: int = Field(5, ge=0, le=1000, description="Epochs without improvement; 0: off.")


class ParameterRange(ApiModel):
    """One dimension of a search space."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type == 'categorical' ? has(self.choices) && size(self.choices) > 0"
                    " : has(self.low) && has(self.high) && self.low <= self.high",
                    "message": "numeric ranges need low <= high; categorical ranges need choices",
                }
            ]
        }
    )
    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str] | None = None


class Objective(ApiModel):
    metric: str = Field(min_length=1, description="A metric the trainer logs, e.g. val_f1.")
    direction: Literal["maximize", "minimize"] = "maximize"


class Tuning(ApiModel):
    """Hyperparameter search; every trial is an MLflow child run, the best one is registered."""

    model_config = ConfigDict(json_schema_extra=validations(PARALLELISM_RULES))
    strategy: Literal["grid", "random", "bayesian"] = "bayesian"
    max_trials: int = Field(20, ge=1, le=10000)
    parallel_trials: int = Field(1, ge=1, le=64, description="Trials run at once in each pod (threads).")
    parallelism: int = Field(
        1, ge=1, le=64, description="Trial-worker pods sharing one study (>1 needs storage)."
    )
    storage: StudyStorage | None = Field(
        None, description="The study's database (PostgreSQL); set: trials run in trial-worker pods."
    )
    objective: Objective
    search_space: dict[str, ParameterRange] = Field(min_length=1)
    pruning: bool = True

    @model_validator(mode="after")
    def _parallelism_rules(self) -> Tuning:
        problem = parallelism_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


class UnfreezeStep(ApiModel):
    epochs: int = Field(ge=1, le=10000)
    unfreeze_layers: int = Field(ge=0, description="How many more layers, from the top, become trainable.")
    learning_rate: float = Field(gt=0)


class FineTune(ApiModel):
    """Start from a base model, replace its head, train it, then unfreeze gradually."""

    base_model_uri: str = Field(pattern=MODEL_URI_PATTERN)
    head_epochs: int = Field(3, ge=0, le=10000, description="Epochs training only the new head.")
    head_learning_rate: float = Field(1e-3, gt=0)
    schedule: list[UnfreezeStep] = Field(default_factory=list)


class Importance(ApiModel):
    """Global feature importance (mean |SHAP| per feature, per class where it applies), logged to
    MLflow as a JSON artifact and a bar chart. Trees: exact TreeSHAP; other models: permutation SHAP."""

    sample_rows: int = Field(200, ge=1, le=10_000, description="Test rows explained (a bounded sample).")
    background_rows: int = Field(
        50, ge=1, le=1_000, description="Training rows that stand in for a missing feature (non-tree models)."
    )


SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": "has(self.command) || has(self.dataset)",
        "message": "the built-in trainer needs spec.dataset (or give spec.command)",
    },
    {
        "rule": "!has(self.tuning) || !has(self.fineTune)",
        "message": "tuning and fineTune exclude each other",
    },
    {
        "rule": "self.workers <= 1 || has(self.command) || !has(self.builtin)"
        " || self.builtin.algorithm in ['mlp', 'cnn']",
        "message": "workers > 1 needs a PyTorch algorithm (mlp, cnn) or your own command",
    },
    {
        "rule": "self.workers <= 1 || has(self.command) || !has(self.tuning)",
        "message": "the built-in trainer runs tuning on one worker: set workers to 1",
    },
]


class TrainingJobSpec(PodEnvironment):
    """Desired state of a TrainingJob."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            SPEC_RULES + CHALLENGE_SPEC_RULES + FAIRNESS_SPEC_RULES + PROCESSES_SPEC_RULES
        )
    )
    image: str | None = Field(
        None,
        min_length=1,
        pattern=IMAGE_PATTERN,
        description="Training image; default: the built-in trainer.",
    )
    command: list[str] | None = Field(None, min_length=1)
    args: list[str] | None = None
    resources: Resources = Field(default_factory=Resources)
    workers: int = Field(
        1, ge=1, le=64, description=">1 runs distributed PyTorch (torchrun) in an indexed Job."
    )
    processes_per_worker: int | None = Field(
        None,
        ge=1,
        le=MAX_PROCESSES_PER_WORKER,
        description="Processes in each worker pod, one per device (torchrun's LOCAL_RANK); "
        "default: resources.gpus when above 1 (PyTorch jobs), else 1.",
    )
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    dataset: Dataset | None = None
    builtin: Builtin = Field(default_factory=Builtin)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    registration: Registration | None = Field(
        None, alias="register", description="Register the model on success."
    )
    run_policy: RunPolicy = Field(default_factory=RunPolicy)
    tuning: Tuning | None = None
    fine_tune: FineTune | None = None
    challenge: Challenge | None = Field(
        None,
        description="Champion/challenger gate: the new version gets register.alias only if it scores "
        "at least as well as the champion on the evaluation data.",
    )

    fairness: Fairness | None = Field(
        None,
        description="Fairness gate: per-group metrics on the test split over sensitive attributes (columns "
        "that are never model inputs); a difference above its threshold blocks registration.",
    )
    importance: Importance | None = Field(
        None, description="Log global feature importance (mean |SHAP|) to MLflow; off when absent."
    )

    @model_validator(mode="after")
    def _challenge_rules(self) -> TrainingJobSpec:
        problem = challenge_spec_problem(self) or fairness_spec_problem(self) or processes_spec_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


TrainingPhase = Literal["Pending", "Suspended", "Running", "Succeeded", "Failed"]


class RegisteredModel(ApiModel):
    name: str
    version: str
    alias: str | None = Field(None, description="The alias moved onto this version, if any.")


class Trial(ApiModel):
    number: int
    value: float
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingJobStatus(ApiModel):
    """Observed state of a TrainingJob, derived from its Job and its pods."""

    observed_generation: int | None = None
    phase: TrainingPhase | None = None
    job_name: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    best_trial: Trial | None = None
    registered_model: RegisteredModel | None = None
    challenge: ChallengeResult | None = Field(None, description="The champion/challenger gate's verdict.")
    fairness: FairnessResult | None = Field(None, description="The fairness gate's verdict and groups.")
    progress: TrainingProgress | None = Field(None, description="The trainer's latest progress report.")
    restarts: int | None = Field(
        None, ge=0, description="workers > 1: gang restarts so far (all workers started again)."
    )
    provenance: Provenance | None = Field(
        None, description="What the model was trained from: the resolved data, seed, code and image."
    )
    conditions: list[Condition] = conditions_field()
