"""A whole `kubeloop train` run against a real MLflow server, as the operator starts it in a pod."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient

from kubeloop.api.summaries import TrainingSummary, decode
from kubeloop.registry import resolve_registered_model
from tests.unit.trainer.builders import blobs, linear, spec_json, write_csv, write_parquet
from tests.unit.trainer.conftest import PodEnvironment

pytestmark = [pytest.mark.unit, pytest.mark.mlflow]

REPO = Path(__file__).resolve().parents[3]


def test_run_logs_registers_and_sets_alias(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    dataset = write_csv(blobs(n_rows=240), tmp_path / "blobs.csv")
    code, summary = pod.train(
        dataset,
        builtin={
            "algorithm": "gradient_boosting",
            "crossValidationFolds": 3,
            "classBalancing": True,
            "seed": 7,
        },
        hyperparameters={"n_estimators": 20, "max_depth": 2},
        register={"modelName": "iris-like", "alias": "champion"},
    )

    assert code == 0, summary.message
    assert summary.failure_reason is None
    assert summary.registered_model is not None and summary.registered_model.name == "iris-like"
    assert summary.metrics["test_accuracy"] > 0.8
    assert "within atol=0.0001" in (summary.message or "")
    run = mlflow_client.get_run(summary.mlflow_run_id or "")
    assert run.info.status == "FINISHED"
    assert run.info.run_name == pod.name
    assert mlflow_client.get_experiment(run.info.experiment_id).name == pod.experiment
    assert (
        summary.mlflow_run_url
        == f"{pod.tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    )
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["kubeloop.io/trainingjob"] == f"{pod.namespace}/{pod.name}"
    assert tags["kubeloop.io/uid"] == pod.uid
    assert tags["kubeloop.version"] == "0.1.0"
    assert tags["env.python"].startswith("3.")
    assert tags["env.scikit-learn"]
    assert params["dataset.sha256"] == hashlib.sha256(dataset.read_bytes()).hexdigest()
    assert params["dataset.rows"] == "240"
    assert params["algorithm"] == "gradient_boosting"
    assert params["model.n_estimators"] == "20"
    assert params["split.rows"] == "144/48/48"
    assert "torch.threads" not in params  # scikit-learn runs never load torch
    for name in ("test_accuracy", "test_precision", "test_recall", "test_f1", "test_roc_auc", "val_f1"):
        assert 0.0 <= metrics[name] <= 1.0
    assert {"cv_accuracy_mean", "cv_accuracy_std", "onnx_parity_max_abs_diff"} <= set(metrics)
    assert metrics["onnx_parity_max_abs_diff"] < 1e-4
    artifacts = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.onnx", "model/MLmodel"} <= artifacts

    version = mlflow_client.get_model_version_by_alias("iris-like", "champion")
    assert version.version == summary.registered_model.version == "1"
    assert version.run_id == run.info.run_id
    assert version.tags["kubeloop.io/trainingjob"] == f"{pod.namespace}/{pod.name}"


def test_served_model_loads_by_alias_with_feature_names(
    pod: PodEnvironment, mlflow_server: object, tmp_path: Path
) -> None:
    """What the inference server does: download models:/name@alias and find model.onnx."""
    table = blobs(n_rows=200, seed=3)
    dataset = write_parquet(table, tmp_path / "train.parquet")
    first_code, _ = pod.train(
        dataset, builtin={"algorithm": "random_forest"}, register={"modelName": "served", "alias": "prod"}
    )
    code, second = pod.train(
        dataset,
        builtin={"algorithm": "logistic_regression"},
        register={"modelName": "served", "alias": "prod"},
    )
    assert (first_code, code) == (0, 0)
    assert second.registered_model is not None and second.registered_model.version == "2"

    local = Path(
        download_artifacts(
            resolve_registered_model("models:/served@prod", pod.tracking_uri).location,
            dst_path=str(tmp_path / "dl"),
            tracking_uri=pod.tracking_uri,
        )
    )
    model_file = next(local.rglob("model.onnx"))
    model = onnx.load(model_file)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(metadata["kubeloop.feature_names"]) == ["f0", "f1", "f2", "f3"]
    assert metadata["kubeloop.algorithm"] == "logistic_regression"
    classes = json.loads(metadata["kubeloop.classes"])
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    x = np.stack([table.column(f"f{i}").to_numpy() for i in range(4)], axis=1).astype(np.float32)
    labels, probabilities = session.run(["label", "probabilities"], {"input": x})
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    predicted = [classes[i] for i in labels]
    assert np.mean(np.array(predicted) == np.array(table.column("label").to_pylist())) > 0.9


def test_torch_run_logs_epochs_and_checkpoint(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    dataset = write_parquet(linear(n_rows=200), tmp_path / "linear.parquet")
    code, summary = pod.train(
        dataset,
        target="target",
        builtin={"algorithm": "mlp", "task": "regression", "earlyStoppingPatience": 3},
        hyperparameters={"epochs": 8, "hiddenUnits": [16], "learningRate": 0.01, "batchSize": 32},
    )
    assert code == 0, summary.message
    run_id = summary.mlflow_run_id or ""
    history = mlflow_client.get_metric_history(run_id, "epoch_val_loss")
    run = mlflow_client.get_run(run_id)
    assert sorted(m.step for m in history) == list(range(1, int(run.data.params["model.epochs_run"]) + 1))
    best_epoch = int(run.data.params["model.best_epoch"])
    best = next(m.value for m in history if m.step == best_epoch)
    assert best == min(m.value for m in history)
    assert run.data.metrics["val_loss"] == pytest.approx(best, rel=1e-5)  # the best epoch's weights were kept
    assert run.data.params["torch.threads"] == str(torch.get_num_threads())
    assert {"test_rmse", "test_mae", "test_r2"} <= set(summary.metrics)
    assert summary.metrics["test_r2"] > 0.5
    artifacts = {a.path for a in mlflow_client.list_artifacts(run_id, "model")}
    assert {"model/model.onnx", "model/checkpoint.pt"} <= artifacts


def test_corrupted_dataset_fails_with_bad_data(
    mlflow_server: object, pod: PodEnvironment, tmp_path: Path
) -> None:
    """A real `kubeloop train` process: non-zero exit, BadData in the termination message."""
    dataset = tmp_path / "broken.parquet"
    write_parquet(blobs(), dataset)
    dataset.write_bytes(b"PAR1" + os.urandom(512) + dataset.read_bytes()[-300:])
    termination_log = tmp_path / "termination.log"
    env = {**os.environ, **pod.env(), "KUBELOOP_TRAINING_SPEC": spec_json(dataset)}
    completed = subprocess.run(
        [sys.executable, "-m", "kubeloop", "train", "--termination-log", str(termination_log)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    summary = decode(termination_log.read_text())
    assert isinstance(summary, TrainingSummary)
    assert summary.failure_reason == "BadData"
    assert (
        summary.message is not None
        and "cannot read" in summary.message
        and "broken.parquet" in summary.message
    )
    assert "training failed (BadData)" in completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1])["failureReason"] == "BadData"


def sigterm_during(
    pod: PodEnvironment, tmp_path: Path, wait_for: str, env: dict[str, str], **fields: Any
) -> tuple[int, TrainingSummary]:
    """Start `kubeloop train`, send SIGTERM once stderr shows ``wait_for``; exit code and summary."""
    dataset = write_parquet(blobs(), tmp_path / "blobs.parquet")
    termination_log = tmp_path / "termination.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "kubeloop", "train", "--termination-log", str(termination_log)],
        env={**os.environ, **pod.env(), **env, "KUBELOOP_TRAINING_SPEC": spec_json(dataset, **fields)},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        lines = iter(process.stderr.readline, "")
        first = next((line for line in lines if wait_for in line or "failed" in line), "")
        assert wait_for in first, first
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    summary = decode(termination_log.read_text())
    assert isinstance(summary, TrainingSummary)
    return process.returncode, summary


def test_sigterm_ends_the_run_at_the_next_epoch(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    """What activeDeadlineSeconds (or a deletion) does to the pod: SIGTERM mid-training."""
    endless = {
        "builtin": {"algorithm": "mlp", "earlyStoppingPatience": 0},
        "hyperparameters": {"epochs": 100000},
    }
    code, summary = sigterm_during(pod, tmp_path, "epoch 2/", {}, **endless)
    assert (code, summary.failure_reason) == (1, "Terminated")
    assert "SIGTERM" in (summary.message or "")
    run = mlflow_client.get_run(summary.mlflow_run_id or "")
    assert (run.info.status, run.data.tags["kubeloop.io/failure-reason"]) == ("FAILED", "Terminated")


def test_sigterm_during_a_long_fit_forces_an_exit_after_the_grace_period(
    pod: PodEnvironment, tmp_path: Path
) -> None:
    """No checkpoint inside a scikit-learn fit: the watchdog writes the summary and exits."""
    huge = {"builtin": {"algorithm": "gradient_boosting"}, "hyperparameters": {"n_estimators": 1000000}}
    grace = {"KUBELOOP_TRAINER_STOP_GRACE_SECONDS": "1"}
    code, summary = sigterm_during(pod, tmp_path, "training gradient_boosting", grace, **huge)
    assert (code, summary.failure_reason) == (1, "Terminated")
    assert "forced exit" in (summary.message or "")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("missing_target", "target column 'label' not in the dataset"),
        ("string_feature", "feature column 'city' has type string"),
        ("empty", "has no rows"),
    ],
)
def test_unusable_data_is_bad_data(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path, content: str, message: str
) -> None:
    table = blobs(n_rows=40)
    if content == "missing_target":
        table = table.drop(["label"])
    elif content == "string_feature":
        table = table.append_column("city", [["x"] * 40])
    else:
        table = table.slice(0, 0)
    dataset = write_parquet(table, tmp_path / "data.parquet")
    code, summary = pod.train(dataset)
    assert code == 1
    assert summary.failure_reason == "BadData"
    assert message in (summary.message or "")
    run = mlflow_client.get_run(summary.mlflow_run_id or "")
    assert run.info.status == "FAILED"
    assert run.data.tags["kubeloop.io/failure-reason"] == "BadData"


def test_missing_dataset_file_is_bad_data(pod: PodEnvironment, tmp_path: Path) -> None:
    code, summary = pod.train(f"file://{tmp_path}/nowhere.parquet")
    assert (code, summary.failure_reason) == (1, "BadData")
    assert "dataset not found" in (summary.message or "")


def test_dataset_folder_of_parquet_files(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    table = blobs(n_rows=120)
    parts = [
        write_parquet(table.slice(i * 40, 40), tmp_path / "parts" / f"part-{i}.parquet") for i in range(3)
    ]
    code, summary = pod.train(f"file://{tmp_path}/parts", builtin={"algorithm": "logistic_regression"})
    assert code == 0, summary.message
    params = mlflow_client.get_run(summary.mlflow_run_id or "").data.params
    assert (params["dataset.files"], params["dataset.rows"]) == ("3", "120")
    assert params["dataset.sha256"] == hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
