"""What the trainer reads from its pod's environment, and what it refuses before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeloop_trainer.cli import main
from kubeloop_trainer.context import context_from_env
from kubeloop_trainer.errors import InvalidSpecError
from kubeloop_trainer.metrics import classification_metrics, is_better, regression_metrics
from kubeloop_trainer.topology import topology_from_env
from tests.unit.trainer.builders import spec_json

pytestmark = pytest.mark.unit


def test_operator_environment_becomes_the_run_context() -> None:
    env = {
        "KUBELOOP_TRAINING_SPEC": spec_json("/data/train.parquet", builtin={"algorithm": "mlp"}, workers=2),
        "KUBELOOP_TRAININGJOB_NAME": "churn",
        "KUBELOOP_TRAININGJOB_NAMESPACE": "team-a",
        "KUBELOOP_TRAININGJOB_UID": "1234",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "MLFLOW_EXPERIMENT_NAME": "churn-exp",
        "MLFLOW_RUN_NAME": "churn",
        "MASTER_ADDR": "churn-0.churn",
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "2",
        "RANK": "1",
        "LOCAL_RANK": "0",
    }
    context = context_from_env(env=env)
    assert context.spec.builtin.algorithm == "mlp"
    assert context.tracking_uri == "http://mlflow:5000"
    assert (context.experiment, context.run_name) == ("churn-exp", "churn")
    assert context.tags()["kubeloop.io/trainingjob"] == "team-a/churn"
    assert context.tags()["kubeloop.io/uid"] == "1234"
    assert (context.topology.world_size, context.topology.rank, context.topology.is_chief) == (2, 1, False)


def test_spec_file_may_be_a_whole_manifest(tmp_path: Path) -> None:
    manifest = {
        "apiVersion": "kubeloop.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "local"},
        "spec": {"dataset": {"uri": "/data/x.csv"}, "builtin": {"algorithm": "random_forest"}},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest))
    context = context_from_env(path, env={})
    assert context.spec.builtin.algorithm == "random_forest"
    assert context.experiment == "Default" and context.topology.world_size == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"workers": 2, "builtin": {"algorithm": "random_forest"}}, "trains on one worker"),
        (
            {
                "workers": 2,
                "builtin": {"algorithm": "mlp"},
                "tuning": {
                    "objective": {"metric": "val_f1"},
                    "searchSpace": {"epochs": {"type": "int", "low": 1, "high": 2}},
                },
            },
            "tuning runs on one worker",
        ),
        ({"fineTune": {"baseModelUri": "models:/m@a"}}, "fineTune needs a PyTorch algorithm"),
        ({"register": {"modelName": "m", "alias": "v2"}}, "MLflow reserves the alias"),
        ({"register": {"modelName": "m", "alias": "Latest"}}, "MLflow reserves the alias"),
    ],
)
def test_unsupported_specs_are_refused_up_front(fields: dict[str, Any], message: str) -> None:
    env = {"KUBELOOP_TRAINING_SPEC": spec_json("/d.csv", **fields), "MASTER_ADDR": "a", "MASTER_PORT": "1"}
    with pytest.raises(InvalidSpecError, match=message):
        context_from_env(env=env)


def test_bad_distributed_environment_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match="needs MASTER_ADDR"):
        topology_from_env({"WORLD_SIZE": "2", "RANK": "0"})
    with pytest.raises(InvalidSpecError, match="does not fit"):
        topology_from_env({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "a", "MASTER_PORT": "1"})


def test_cli_without_spec_fails_with_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBELOOP_TRAINING_SPEC", raising=False)
    log = tmp_path / "termination.log"
    assert main(["--termination-log", str(log)]) == 1
    assert '"failureReason":"InvalidSpec"' in log.read_text()
    assert "no spec" in capsys.readouterr().err


def test_metrics_of_perfect_and_imperfect_models() -> None:
    import numpy as np

    perfect = classification_metrics(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]))
    assert perfect["accuracy"] == perfect["f1"] == perfect["roc_auc"] == 1.0
    single_class = classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert "roc_auc" not in single_class and single_class["accuracy"] == 0.5
    regression = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert regression["rmse"] == pytest.approx((4 / 3) ** 0.5) and regression["mae"] == pytest.approx(2 / 3)
    assert (
        is_better(0.1, 0.2, "val_loss")
        and is_better(0.9, 0.8, "val_f1")
        and not is_better(0.3, 0.2, "val_rmse")
    )
