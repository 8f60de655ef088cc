"""`kubeloop train` writes its progress where the operator reads it: the whole path, trainer CLI ->
a real MLflow server -> the operator's reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeloop.api.progress import TrialCounts
from kubeloop_operator.progress import read_progress
from tests.unit.trainer.builders import blobs, write_parquet
from tests.unit.trainer.conftest import PodEnvironment

pytestmark = [pytest.mark.unit, pytest.mark.mlflow]


def test_a_network_run_ends_with_its_last_epoch_at_100_percent(pod: PodEnvironment, tmp_path: Path) -> None:
    dataset = write_parquet(blobs(n_rows=120), tmp_path / "blobs.parquet")
    code, summary = pod.train(
        dataset,
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 0},
        hyperparameters={"epochs": 3, "hiddenUnits": [8], "batchSize": 16},
    )
    assert code == 0, summary.message
    progress = read_progress(pod.tracking_uri, pod.experiment, pod.uid)
    assert progress is not None
    assert (progress.epoch, progress.total_epochs, progress.percent, progress.eta_seconds) == (
        3,
        3,
        100.0,
        0.0,
    )
    train_rows = 120 - 2 * 24  # the default 20 % validation and 20 % test
    assert progress.step == 3 * -(-train_rows // 16)
    assert progress.metrics == {k: pytest.approx(v) for k, v in summary.metrics.items()}
    assert progress.updated is not None


def test_a_tuning_run_reports_its_trials(pod: PodEnvironment, tmp_path: Path) -> None:
    dataset = write_parquet(blobs(n_rows=120), tmp_path / "blobs.parquet")
    code, summary = pod.train(
        dataset,
        builtin={"algorithm": "logistic_regression"},
        tuning={
            "strategy": "random",
            "maxTrials": 3,
            "objective": {"metric": "val_f1"},
            "searchSpace": {"C": {"type": "float", "low": 0.1, "high": 10, "log": True}},
        },
    )
    assert code == 0, summary.message
    progress = read_progress(pod.tracking_uri, pod.experiment, pod.uid)
    assert progress is not None and progress.percent == 100.0
    assert progress.trials == TrialCounts(total=3, running=0, complete=3)
