"""The run's context: the spec and what the operator tells the pod through its environment.

``KUBELOOP_TRAINING_SPEC`` (the TrainingJobSpec as wire JSON), ``KUBELOOP_TRAININGJOB_NAME``,
``_NAMESPACE``, ``_UID``, ``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``, ``MLFLOW_RUN_NAME``
and, for workers > 1, the torch.distributed variables (see `kubeloop_trainer.distributed`); trial
workers also get `kubeloop.contracts.trial_workers`' variables.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from kubeloop.api.training import TrainingJobSpec
from kubeloop.contracts.trial_workers import TrialWorker, TrialWorkerEnvError, trial_worker_from_env
from kubeloop_trainer.errors import InvalidSpecError
from kubeloop_trainer.model import SKLEARN_ALGORITHMS
from kubeloop_trainer.tags import ALGORITHM_TAG, TRAININGJOB_TAG, UID_TAG
from kubeloop_trainer.topology import Topology, topology_from_env

SPEC_ENV = "KUBELOOP_TRAINING_SPEC"
RESERVED_ALIAS = re.compile(r"^[vV][0-9]+$")  # MLflow refuses these aliases (they read as versions)
DEFAULT_EXPERIMENT = "Default"


@dataclass(frozen=True)
class JobIdentity:
    """The TrainingJob this run belongs to (empty outside Kubernetes)."""

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None

    @property
    def qualified_name(self) -> str | None:
        if self.name is None:
            return None
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class RunContext:
    spec: TrainingJobSpec
    job: JobIdentity = field(default_factory=JobIdentity)
    tracking_uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    run_name: str | None = None
    topology: Topology = field(default_factory=Topology)
    output_dir: Path | None = None
    trial_worker: TrialWorker | None = None  # one of tuning.parallelism pods sharing a study

    def tags(self) -> dict[str, str]:
        tags: dict[str, str] = {ALGORITHM_TAG: self.spec.builtin.algorithm}
        if self.job.qualified_name:
            tags[TRAININGJOB_TAG] = self.job.qualified_name
        if self.job.uid:
            tags[UID_TAG] = self.job.uid
        return tags


def parse_spec(text: str, source: str) -> TrainingJobSpec:
    try:
        return TrainingJobSpec.model_validate_json(text)
    except ValidationError as error:
        raise InvalidSpecError(f"invalid TrainingJobSpec in {source}: {error}") from error


def spec_text(spec_file: Path | None, env: Mapping[str, str]) -> tuple[str, str]:
    """The spec as JSON and where it came from. A file may hold JSON or YAML, either the spec
    itself or a whole TrainingJob manifest (its ``spec`` is taken)."""
    if spec_file is None:
        if text := env.get(SPEC_ENV):
            return text, SPEC_ENV
        raise InvalidSpecError(f"no spec: set {SPEC_ENV} or pass --spec FILE")
    try:
        document = yaml.safe_load(spec_file.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise InvalidSpecError(f"cannot read spec file {spec_file}: {error}") from error
    if isinstance(document, dict) and document.get("kind") == "TrainingJob":
        document = document.get("spec")
    return json.dumps(document), str(spec_file)


def check_supported(spec: TrainingJobSpec) -> None:
    """Refuse what the built-in trainer cannot do, before any work starts."""
    algorithm = spec.builtin.algorithm
    if spec.dataset is None:
        raise InvalidSpecError("the built-in trainer needs spec.dataset")
    if spec.workers > 1 and algorithm in SKLEARN_ALGORITHMS:
        raise InvalidSpecError(
            f"{algorithm} trains on one worker; set workers: 1 or use mlp/cnn for distributed runs"
        )
    if spec.workers > 1 and spec.tuning is not None:
        raise InvalidSpecError("tuning runs on one worker (use tuning.parallelTrials); set workers: 1")
    if spec.fine_tune is not None and algorithm in SKLEARN_ALGORITHMS:
        raise InvalidSpecError(f"fineTune needs a PyTorch algorithm (mlp or cnn), not {algorithm}")
    alias = spec.registration.alias if spec.registration else None
    if alias and (alias.lower() == "latest" or RESERVED_ALIAS.match(alias)):
        raise InvalidSpecError(
            f"MLflow reserves the alias {alias!r} ('latest' and v<number>); choose another"
        )


def context_from_env(
    spec_file: Path | None = None, env: Mapping[str, str] | None = None, output_dir: Path | None = None
) -> RunContext:
    env = os.environ if env is None else env
    text, source = spec_text(spec_file, env)
    spec = parse_spec(text, source)
    check_supported(spec)
    job = JobIdentity(
        name=env.get("KUBELOOP_TRAININGJOB_NAME") or None,
        namespace=env.get("KUBELOOP_TRAININGJOB_NAMESPACE") or None,
        uid=env.get("KUBELOOP_TRAININGJOB_UID") or None,
    )
    experiment = (
        spec.mlflow.experiment or env.get("MLFLOW_EXPERIMENT_NAME") or job.namespace or DEFAULT_EXPERIMENT
    )
    try:
        trial_worker = trial_worker_from_env(env)
    except TrialWorkerEnvError as error:
        raise InvalidSpecError(str(error)) from error
    if trial_worker is not None and spec.tuning is None:
        raise InvalidSpecError("a trial worker (KUBELOOP_STUDY_STORAGE set) needs spec.tuning")
    return RunContext(
        spec=spec,
        job=job,
        tracking_uri=spec.mlflow.tracking_uri or env.get("MLFLOW_TRACKING_URI") or None,
        experiment=experiment,
        run_name=env.get("MLFLOW_RUN_NAME") or job.name,
        topology=topology_from_env(env),
        output_dir=output_dir,
        trial_worker=trial_worker,
    )
