"""Two real DDP worker processes (gloo on 127.0.0.1) with the environment the operator renders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow.tracking import MlflowClient

from kubeloop.api.summaries import TrainingSummary, decode
from kubeloop_trainer.splits import Part
from kubeloop_trainer.topology import Topology
from tests.fixtures.ports import free_port
from tests.unit.trainer import ddp_worker
from tests.unit.trainer.builders import blobs, spec_json, write_parquet
from tests.unit.trainer.conftest import PodEnvironment

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
WORLD_SIZE = 2


def worker_env(rank: int, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What the operator renders for pod ``rank`` of a workers=2 TrainingJob, with MASTER_ADDR local."""
    return {
        **os.environ,
        **(extra or {}),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(WORLD_SIZE),
        "RANK": str(rank),
        "LOCAL_RANK": "0",
        "OMP_NUM_THREADS": "1",
    }


def run_workers(
    command: Callable[[int], list[str]], extra_env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Start one process per rank, all at once (they rendezvous at MASTER_ADDR:MASTER_PORT)."""
    port = free_port()
    processes = [
        subprocess.Popen(
            command(rank),
            env=worker_env(rank, port, extra_env),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(WORLD_SIZE)
    ]
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    finally:
        for process in processes:  # a worker left waiting for a dead peer must not outlive the test
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def max_difference(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> float:
    return max(float((left[name] - right[name]).abs().max()) for name in left)


def weights_after_single_process_step(train: Part) -> dict[str, torch.Tensor]:
    network = ddp_worker.initial_network(ddp_worker.training_rows())
    ddp_worker.one_step(network, train, Topology())
    return network.state_dict()


def test_two_workers_average_their_gradients(tmp_path: Path) -> None:
    results = run_workers(lambda rank: [sys.executable, "-m", "tests.unit.trainer.ddp_worker", str(tmp_path)])
    for result in results:
        assert result.returncode == 0, result.stderr

    rank0, rank1 = (torch.load(tmp_path / f"rank-{r}.pt", weights_only=True) for r in range(WORLD_SIZE))
    rows0, rows1 = (json.loads((tmp_path / f"rank-{r}.json").read_text())["rows"] for r in range(WORLD_SIZE))
    data = ddp_worker.training_rows()
    initial = ddp_worker.initial_network(data).state_dict()

    # Each rank trained on its own half of the rows ...
    assert set(rows0).isdisjoint(rows1) and sorted(rows0 + rows1) == list(range(len(data)))
    # ... yet both hold the very same weights after the step, and the step moved them:
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)
    assert max_difference(rank0, initial) > 0.01
    # A run on rank 0's shard alone lands elsewhere: rank 1's gradients counted too ...
    alone = weights_after_single_process_step(Part(data.x[rows0], data.y[rows0]))
    assert max_difference(rank0, alone) > 0.01
    # ... and the DDP step equals one step on both shards together (the averaged gradient).
    both = weights_after_single_process_step(Part(data.x[rows0 + rows1], data.y[rows0 + rows1]))
    assert max_difference(rank0, both) < 1e-4


@pytest.mark.mlflow
def test_distributed_cli_run_only_chief_records(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    """`kubeloop train` as two pods of an indexed Job: both train, rank 0 alone logs."""
    dataset = write_parquet(blobs(n_rows=160), tmp_path / "blobs.parquet")
    spec = spec_json(
        dataset,
        workers=2,
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 0},
        hyperparameters={"epochs": 3, "hiddenUnits": [8], "batchSize": 16},
        register={"modelName": "ddp-model"},
    )
    out = tmp_path / "out"

    def command(rank: int) -> list[str]:
        log = tmp_path / f"termination-{rank}.log"
        return [sys.executable, "-m", "kubeloop", "train", f"--output-dir={out}", f"--termination-log={log}"]

    results = run_workers(command, {**pod.env(), "KUBELOOP_TRAINING_SPEC": spec})
    for result in results:
        assert result.returncode == 0, result.stderr

    summaries: list[Any] = [json.loads(r.stdout.strip().splitlines()[-1]) for r in results]
    assert summaries[0]["registeredModel"] == {"name": "ddp-model", "version": "1"}
    assert "mlflowRunId" not in summaries[1]
    chief = decode((tmp_path / "termination-0.log").read_text())
    assert isinstance(chief, TrainingSummary) and chief.mlflow_run_id == summaries[0]["mlflowRunId"]
    experiment = mlflow_client.get_experiment_by_name(pod.experiment)
    assert experiment is not None
    runs = mlflow_client.search_runs([experiment.experiment_id])
    assert [run.info.run_id for run in runs] == [summaries[0]["mlflowRunId"]]
    assert runs[0].data.params["workers"] == "2"
    weights = [
        torch.load(out / f"rank-{r}" / "checkpoint.pt", weights_only=True)["state_dict"] for r in range(2)
    ]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
