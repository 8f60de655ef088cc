"""MLflow tracking through an explicit client (no global active run: safe with parallel trials)."""

from __future__ import annotations

import math
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import mlflow.onnx
import onnx
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from kubeloop.mlflow_client import connect
from kubeloop_trainer.tags import FAILURE_REASON_TAG

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
PARENT_RUN_TAG = "mlflow.parentRunId"
MODEL_ARTIFACT_PATH = "model"
ONNX_FILE = "model.onnx"
CHECKPOINT_FILE = "checkpoint.pt"
PARAM_VALUE_LIMIT = 6000
BATCH_LIMIT = 100


_NOT_IN_METRIC_NAMES = re.compile(r"[^\w.\- /]")


def metric_name(text: str) -> str:
    """``text`` as MLflow accepts it in a metric name (letters, digits, _ - . space /)."""
    return _NOT_IN_METRIC_NAMES.sub("_", text)


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def param_text(value: Any) -> str:
    return str(value)[:PARAM_VALUE_LIMIT]


class Tracker:
    """One experiment on one MLflow server."""

    def __init__(self, tracking_uri: str, experiment_name: str) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self.client = connect(self.tracking_uri)
        self.experiment_id = self._experiment_id(experiment_name)

    def _experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return str(self.client.create_experiment(name))
        except MlflowException:  # created meanwhile by another run
            created = self.client.get_experiment_by_name(name)
            if created is None:
                raise
            return str(created.experiment_id)

    def start_run(self, run_name: str | None, tags: dict[str, str], parent_run_id: str | None = None) -> str:
        all_tags = dict(tags)
        if parent_run_id is not None:
            all_tags[PARENT_RUN_TAG] = parent_run_id
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=run_name)
        return str(run.info.run_id)

    def run_url(self, run_id: str) -> str | None:
        """The run's page in the MLflow UI, where the tracking URI is a server's."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return None
        return f"{self.tracking_uri}/#/experiments/{self.experiment_id}/runs/{run_id}"

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        entries = [Param(str(name), param_text(value)) for name, value in sorted(params.items())]
        for batch in chunks(entries, BATCH_LIMIT):
            self.client.log_batch(run_id, params=batch)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        entries = [
            Metric(name, float(v), now, step) for name, v in sorted(metrics.items()) if math.isfinite(v)
        ]
        for batch in chunks(entries, BATCH_LIMIT):
            self.client.log_batch(run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        entries = [RunTag(name, param_text(value)) for name, value in sorted(tags.items())]
        for batch in chunks(entries, BATCH_LIMIT):
            self.client.log_batch(run_id, tags=batch)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        """``data`` as the run artifact ``artifact_file`` (a path like ``importance/plot.png``)."""
        folder, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="kubeloop-artifact-") as scratch:
            local = Path(scratch) / name
            local.write_bytes(data)
            self.client.log_artifact(run_id, str(local), folder or None)

    def log_model(self, run_id: str, onnx_bytes: bytes, checkpoint: bytes | None) -> str:
        """Upload ``model/`` (model.onnx, MLmodel, requirements; checkpoint.pt for PyTorch models)
        as run artifacts; returns the artifact URI a model version points at."""
        with tempfile.TemporaryDirectory(prefix="kubeloop-model-") as scratch:
            model_dir = Path(scratch) / MODEL_ARTIFACT_PATH
            mlflow.onnx.save_model(
                onnx.load_from_string(onnx_bytes),
                str(model_dir),
                pip_requirements=["onnxruntime"],
                save_as_external_data=False,
            )
            (model_dir / ONNX_FILE).write_bytes(onnx_bytes)  # byte for byte what passed the parity check
            if checkpoint is not None:
                (model_dir / CHECKPOINT_FILE).write_bytes(checkpoint)
            self.client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
        run = self.client.get_run(run_id)
        return f"{run.info.artifact_uri}/{MODEL_ARTIFACT_PATH}"

    def register(self, run_id: str, source: str, name: str, alias: str | None, tags: dict[str, str]) -> str:
        """A new version of registered model ``name`` from ``source``; moves ``alias`` onto it."""
        try:
            self.client.create_registered_model(name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = self.client.create_model_version(name, source, run_id=run_id, tags=tags)
        if alias:
            self.client.set_registered_model_alias(name, alias, version.version)
        return str(version.version)

    def finish(self, run_id: str, status: RunStatus, failure_reason: str | None = None) -> None:
        if failure_reason:
            self.client.set_tag(run_id, FAILURE_REASON_TAG, failure_reason)
        self.client.set_terminated(run_id, status)
