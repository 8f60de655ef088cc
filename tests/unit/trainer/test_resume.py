"""Resuming a PyTorch fit from the last epoch checkpoint of an interrupted run.

In process: the loop's checkpoint after epoch k, taken up by a fresh fit, lands on the very
weights of an uninterrupted fit (plain and fine-tuning phases). With processes: two real gloo
ranks of ``kubeloop train`` against a real MLflow server; rank 1 dies mid-run, the gang is run
again as the operator's next attempt, resumes from the checkpoint in MLflow and ends with the
same model as a run that was never interrupted. A single worker's pod, killed mid-run and started
again as the Job controller replaces it (nothing tells it so), does the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow.tracking import MlflowClient

from kubeloop.api.training import TrainingJobSpec
from kubeloop_trainer import stopping
from kubeloop_trainer.checkpoints import (
    CHECKPOINT_EPOCH_TAG,
    RESUMED_FROM_EPOCH,
    RESUMED_FROM_RUN_TAG,
    RunCheckpoints,
)
from kubeloop_trainer.context import JobIdentity, RunContext
from kubeloop_trainer.features import build_features
from kubeloop_trainer.hyperparameters import network_hyperparameters
from kubeloop_trainer.model import Recipe
from kubeloop_trainer.progress import Progress
from kubeloop_trainer.recording import Recorder
from kubeloop_trainer.resume import decode
from kubeloop_trainer.splits import split_rows, take
from kubeloop_trainer.tags import UID_TAG
from kubeloop_trainer.torch_fit import LoopSettings, Phase, fit_network
from kubeloop_trainer.torch_models import new_network
from kubeloop_trainer.tracking import Tracker
from tests.unit.trainer.builders import blobs, spec_json, write_parquet
from tests.unit.trainer.conftest import PodEnvironment
from tests.unit.trainer.test_distributed import REPO, run_workers

pytestmark = pytest.mark.unit
EPOCHS = 6
HYPERPARAMETERS = {"epochs": EPOCHS, "hiddenUnits": [16], "batchSize": 16, "dropout": 0.2}


class MemoryCheckpoints:
    """EpochCheckpoints in a dict (one process): what a gang leaves, and what the next one loads."""

    def __init__(self, start_from: bytes | None = None) -> None:
        self.start_from = start_from
        self.saved: dict[int, bytes] = {}
        self.resumed_after: int | None = None

    def load(self) -> bytes | None:
        return self.start_from

    def resumed(self, epoch: int) -> None:
        self.resumed_after = epoch

    def due(self) -> bool:
        return True

    def save(self, epoch: int, data: bytes) -> None:
        self.saved[epoch] = data


def fit(phases: list[Phase], checkpoints: MemoryCheckpoints, patience: int = 2) -> dict[str, torch.Tensor]:
    features = build_features(blobs(n_rows=160, seed=3), "label", "classification")
    data = take(features, split_rows(160, features.y, 0.25, 0.2, seed=0))
    hp = network_hyperparameters(HYPERPARAMETERS)
    network = new_network(Recipe("mlp", "classification", 4, 3, HYPERPARAMETERS, seed=5), hp, data.train)
    settings = LoopSettings(task="classification", batch_size=16, patience=patience, seed=5)
    fit_network(network, data.train, data.validation, phases, settings, checkpoints=checkpoints)
    return network.state_dict()


def same_weights(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[name], right[name]) for name in left)


@pytest.mark.parametrize(
    ("phases", "resume_after"),
    [
        ([Phase(EPOCHS, 0.05)], 3),
        ([Phase(2, 0.05, trainable_blocks=0), Phase(4, 0.01)], 2),  # at a phase boundary
        ([Phase(2, 0.05, trainable_blocks=0), Phase(4, 0.01)], 4),  # within the second phase
    ],
)
def test_a_fit_resumed_after_epoch_k_ends_where_an_uninterrupted_one_does(
    phases: list[Phase], resume_after: int
) -> None:
    uninterrupted = MemoryCheckpoints()
    expected = fit(phases, uninterrupted, patience=0)
    assert sorted(uninterrupted.saved) == list(range(1, EPOCHS + 1))
    resumed = MemoryCheckpoints(start_from=uninterrupted.saved[resume_after])
    weights = fit(phases, resumed, patience=0)
    assert resumed.resumed_after == resume_after
    assert sorted(resumed.saved) == list(range(resume_after + 1, EPOCHS + 1)), "only the rest is trained"
    assert same_weights(weights, expected)
    assert not same_weights(decode(uninterrupted.saved[resume_after]).network, expected), "it trained on"


def test_a_phase_that_stopped_early_stays_stopped() -> None:
    phases = [Phase(40, 0.05)]
    uninterrupted = MemoryCheckpoints()
    expected = fit(phases, uninterrupted, patience=2)
    last = max(uninterrupted.saved)
    assert last < 40, "patience ended the fit early"
    resumed = MemoryCheckpoints(start_from=uninterrupted.saved[last])
    assert same_weights(fit(phases, resumed, patience=2), expected)  # the best epoch's weights
    assert resumed.saved == {}, "no epoch after the one where patience ran out"
    assert decode(uninterrupted.saved[last]).epochs_run == last


@pytest.mark.mlflow
def test_a_restarted_gang_resumes_from_the_checkpoint_in_mlflow(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    dataset = write_parquet(blobs(n_rows=160), tmp_path / "blobs.parquet")
    spec = spec_json(
        dataset,
        workers=2,
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 3},
        hyperparameters=HYPERPARAMETERS,
    )

    def gang(uid: str, attempt: int, out: Path, crash_after: int | None = None) -> list[int]:
        def command(rank: int) -> list[str]:
            args = [f"--output-dir={out}", f"--termination-log={tmp_path / f'{uid}-{attempt}-{rank}.log'}"]
            return train_command(args, crash_after)

        env = {**pod.env(), "KUBELOOP_TRAINING_SPEC": spec, "KUBELOOP_TRAININGJOB_UID": uid}
        results = run_workers(command, {**env, "KUBELOOP_GANG_ATTEMPT": str(attempt)})
        return [result.returncode for result in results]

    def runs(uid: str) -> list[Any]:
        return job_runs(mlflow_client, pod.experiment, uid)

    # A gang that is never interrupted (an attempt > 0 without any checkpoint starts from scratch).
    assert gang("uid-whole", 1, tmp_path / "whole") == [0, 0]
    (whole,) = runs("uid-whole")
    assert RESUMED_FROM_EPOCH not in whole.data.params and whole.data.params["model.epochs_run"] == str(
        EPOCHS
    )

    # The same job whose rank 1 dies after epoch 3: the survivor fails too, nothing hangs.
    codes = gang("uid-cut", 0, tmp_path / "cut", crash_after=3)
    assert codes[1] == 137 and codes[0] != 0
    (cut,) = runs("uid-cut")
    saved = int(cut.data.tags[CHECKPOINT_EPOCH_TAG])
    assert 1 <= saved <= 3, "the first epoch's, or a later one finished before rank 1 died"

    # The operator's next attempt: a fresh gang, resumed from that checkpoint.
    assert gang("uid-cut", 1, tmp_path / "resumed") == [0, 0]
    first, resumed = runs("uid-cut")
    assert first.info.run_id == cut.info.run_id
    assert resumed.data.params[RESUMED_FROM_EPOCH] == str(saved)
    assert resumed.data.tags[RESUMED_FROM_RUN_TAG] == cut.info.run_id
    assert resumed.data.params["model.epochs_run"] == str(EPOCHS)
    resumed_weights = final_weights(tmp_path / "resumed" / "rank-0")
    assert same_weights(resumed_weights, final_weights(tmp_path / "whole" / "rank-0"))
    assert not same_weights(resumed_weights, decode_network(tmp_path, cut, mlflow_client))


@pytest.mark.mlflow
def test_a_replaced_single_worker_pod_resumes_from_the_checkpoint_in_mlflow(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    dataset = write_parquet(blobs(n_rows=160), tmp_path / "blobs.parquet")
    spec = spec_json(
        dataset, builtin={"algorithm": "mlp", "earlyStoppingPatience": 3}, hyperparameters=HYPERPARAMETERS
    )

    def train(uid: str, out: Path, crash_after: int | None = None) -> int:
        command = train_command([f"--output-dir={out}", f"--termination-log={out}.log"], crash_after)
        env = {**pod.env(), "KUBELOOP_TRAINING_SPEC": spec, "KUBELOOP_TRAININGJOB_UID": uid}
        return run_pod(command, env).returncode

    def runs(uid: str) -> list[Any]:
        return job_runs(mlflow_client, pod.experiment, uid)

    assert train("uid-whole", tmp_path / "whole") == 0
    assert train("uid-whole", tmp_path / "again") == 0, "the same job and spec once more"
    whole, again = runs("uid-whole")
    assert whole.info.status == "FINISHED" and CHECKPOINT_EPOCH_TAG in whole.data.tags
    assert RESUMED_FROM_EPOCH not in again.data.params, "a finished run leaves nothing to resume"

    assert train("uid-cut", tmp_path / "cut", crash_after=3) == 137
    (cut,) = runs("uid-cut")
    saved = int(cut.data.tags[CHECKPOINT_EPOCH_TAG])
    assert 1 <= saved <= 3 and cut.info.status == "RUNNING", "killed: nobody ended its run"

    assert train("uid-cut", tmp_path / "resumed") == 0  # the replacement pod: same env, no attempt
    first, resumed = runs("uid-cut")
    assert first.info.run_id == cut.info.run_id
    assert resumed.data.params[RESUMED_FROM_EPOCH] == str(saved)
    assert resumed.data.tags[RESUMED_FROM_RUN_TAG] == cut.info.run_id
    assert resumed.data.params["model.epochs_run"] == str(EPOCHS)
    assert same_weights(final_weights(tmp_path / "resumed"), final_weights(tmp_path / "whole"))


@pytest.mark.mlflow
def test_checkpoints_take_at_most_their_share_of_the_fit(
    pod: PodEnvironment, mlflow_client: MlflowClient
) -> None:
    now = [0.0]
    spec = TrainingJobSpec.model_validate(
        {"dataset": {"uri": "s3://d/t.parquet"}, "builtin": {"algorithm": "mlp"}}
    )
    context = RunContext(
        spec=spec, job=JobIdentity("tj", "team-a", "uid-share"), tracking_uri=pod.tracking_uri
    )
    recorder = Recorder(context, Tracker(pod.tracking_uri, pod.experiment), Progress(enabled=False))
    recorder.start({})
    checkpoints = RunCheckpoints(context, recorder, attempt=None, clock=lambda: now[0])

    taken = []
    for epoch in range(1, 101):  # epochs of 1 s; each checkpoint costs 2 s of the clock
        if checkpoints.due():
            now[0] += 2.0
            checkpoints.save(epoch, f"after {epoch}".encode())
            taken.append(epoch)
        now[0] += 1.0
    # 2 s spent, then 38 s (19 x 2) without: a 5 % share, 2 s of every 40
    assert taken == [1, 39, 77]
    run = mlflow_client.get_run(recorder.run_id or "")
    assert run.data.tags[CHECKPOINT_EPOCH_TAG] == "77"
    assert not checkpoints.due(), "epoch 101 is within the gap"
    stopping.request_stop("SIGTERM")  # evicted: the epoch it is in is kept for its replacement
    try:
        assert checkpoints.due()
    finally:
        stopping.reset()


def train_command(args: list[str], crash_after: int | None) -> list[str]:
    """``kubeloop train args``; with ``crash_after``, the same whose last rank dies after that epoch."""
    if crash_after is None:
        return [sys.executable, "-m", "kubeloop", "train", *args]
    return [sys.executable, "-m", "tests.unit.trainer.crashing_worker", str(crash_after), *args]


def job_runs(client: MlflowClient, experiment_name: str, uid: str) -> list[Any]:
    """The MLflow runs of one TrainingJob (its uid tag), oldest first."""
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None
    query = f"tags.`{UID_TAG}` = '{uid}'"
    return list(client.search_runs([experiment.experiment_id], query, order_by=["attributes.start_time ASC"]))


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The network ``kubeloop train --output-dir`` left in ``folder`` (``rank-N`` for a gang's ranks)."""
    state: dict[str, torch.Tensor] = torch.load(folder / "checkpoint.pt", weights_only=True)["state_dict"]
    return state


def run_pod(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One pod's process: the test's environment (the ``pod`` fixture has removed any rank) and ``env``."""
    return subprocess.run(
        command,
        env={**os.environ, **env, "OMP_NUM_THREADS": "1"},
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def decode_network(tmp_path: Path, run: Any, client: MlflowClient) -> dict[str, torch.Tensor]:
    """The weights in the interrupted run's checkpoint: short of the end of training."""
    local = client.download_artifacts(run.info.run_id, "resume/checkpoint.pt", str(tmp_path))
    return decode(Path(local).read_bytes()).network
