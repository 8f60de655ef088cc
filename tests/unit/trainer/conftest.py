"""Fixtures of the trainer tests: the pod environment the operator renders, pointed at a real MLflow."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from kubeloop.api.summaries import TrainingSummary, decode
from kubeloop.mlflow_client import connect
from kubeloop_trainer.cli import main
from tests.unit.trainer.builders import spec_json

_names = itertools.count(1)


class PodEnvironment:
    """Sets the variables a TrainingJob's pod gets, and runs ``kubeloop train`` in-process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tracking_uri: str, workdir: Path) -> None:
        self.monkeypatch = monkeypatch
        self.tracking_uri = tracking_uri
        self.workdir = workdir
        self.name = f"tj-{next(_names)}"
        self.namespace = "team-a"
        self.uid = f"uid-{self.name}"
        self.experiment = f"exp-{self.name}"
        self.termination_message = ""  # what the last run left for the operator, verbatim
        for key, value in self.env().items():
            monkeypatch.setenv(key, value)
        for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            monkeypatch.delenv(key, raising=False)

    def env(self) -> dict[str, str]:
        return {
            "KUBELOOP_TRAININGJOB_NAME": self.name,
            "KUBELOOP_TRAININGJOB_NAMESPACE": self.namespace,
            "KUBELOOP_TRAININGJOB_UID": self.uid,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": self.experiment,
            "MLFLOW_RUN_NAME": self.name,
        }

    def train(self, dataset: Path | str, target: str = "label", **fields: Any) -> tuple[int, TrainingSummary]:
        """Exit code and termination-message summary of one ``kubeloop train`` run."""
        self.monkeypatch.setenv("KUBELOOP_TRAINING_SPEC", spec_json(dataset, target, **fields))
        termination_log = self.workdir / f"termination-{next(_names)}.log"
        code = main(["--termination-log", str(termination_log)])
        self.termination_message = termination_log.read_text()
        summary = decode(self.termination_message)
        assert isinstance(summary, TrainingSummary)
        return code, summary


@pytest.fixture
def pod(monkeypatch: pytest.MonkeyPatch, mlflow_server: Any, tmp_path: Path) -> PodEnvironment:
    return PodEnvironment(monkeypatch, mlflow_server.tracking_uri, tmp_path)


@pytest.fixture
def mlflow_client(mlflow_server: Any) -> MlflowClient:
    return connect(mlflow_server.tracking_uri)
