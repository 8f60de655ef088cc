"""Two "pods" of two processes: each pod is one real torchrun launcher started with the command and
environment the operator renders (its index, rank 0's address on 127.0.0.1), four gloo ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from kubeloop.api.training import TrainingJobSpec
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.training import render_training
from kubeloop_operator.settings import OperatorSettings
from kubeloop_trainer import cli
from kubeloop_trainer.errors import InvalidSpecError
from kubeloop_trainer.splits import Part
from kubeloop_trainer.topology import Topology, topology_from_env
from tests.fixtures.ports import free_port
from tests.unit.trainer import ddp_worker

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
PODS, PROCESSES = 2, 2
WORLD = PODS * PROCESSES


def rendered_container(out: Path) -> dict[str, Any]:
    spec = TrainingJobSpec.model_validate(
        {
            "command": ["python", "-m", "tests.unit.trainer.ddp_worker", str(out)],
            "workers": PODS,
            "processesPerWorker": PROCESSES,
        }
    )
    owner = Owner("TrainingJob", "kubeloop.io/v1alpha1", "ddp", "team-a", "uid-1", 1)
    job = render_training(owner, spec, OperatorSettings())[0]
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


def pod_process(container: dict[str, Any], index: int, port: int, tmp: Path) -> subprocess.Popen[str]:
    """What the kubelet would start for pod ``index``: the command, fieldRefs and rank 0's DNS name
    resolved locally, ``python`` as this interpreter, ``tmp`` as its temporary directory (torchrun
    leaves its log directories there, as it does in a pod's /tmp)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(tmp))
    for item in container["env"]:
        if not item["name"].startswith(("PET_", "MASTER_", "WORLD_", "RANK", "LOCAL_")):
            continue
        env[item["name"]] = str(index) if "valueFrom" in item else item["value"]
    env |= {"PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port)}
    command = [sys.executable if part == "python" else part for part in container["command"]]
    return subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_pods(out: Path) -> list[tuple[int, str]]:
    container, port = rendered_container(out), free_port()
    pods = [pod_process(container, index, port, out) for index in range(PODS)]
    results = []
    try:
        for pod in pods:
            _, stderr = pod.communicate(timeout=300)
            results.append((pod.returncode, stderr))
    finally:
        for pod in pods:  # a launcher left waiting for a dead peer must not outlive the test
            if pod.poll() is None:
                pod.kill()
                pod.wait()
    return results


def weights_after_single_process_step(train: Part) -> dict[str, torch.Tensor]:
    network = ddp_worker.initial_network(ddp_worker.training_rows())
    ddp_worker.one_step(network, train, Topology())
    return network.state_dict()


def max_difference(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> float:
    return max(float((left[name] - right[name]).abs().max()) for name in left)


def test_two_pods_of_two_processes_average_gradients_over_four_ranks(tmp_path: Path) -> None:
    for returncode, stderr in run_pods(tmp_path):
        assert returncode == 0, stderr

    weights = [torch.load(tmp_path / f"rank-{r}.pt", weights_only=True) for r in range(WORLD)]
    reports = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(WORLD)]
    # torchrun's conventions: RANK = pod index * P + LOCAL_RANK, WORLD_SIZE = pods * P
    assert [(r["group_rank"], r["local_rank"]) for r in reports] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert {(r["world_size"], r["local_world_size"]) for r in reports} == {(WORLD, PROCESSES)}

    data = ddp_worker.training_rows()
    rows = [r["rows"] for r in reports]
    every = [row for rank_rows in rows for row in rank_rows]
    # Each rank trained on its own quarter of the rows ...
    assert sorted(every) == list(range(len(data)))
    # ... yet all four hold the very same weights after the step, and the step moved them:
    assert all(torch.equal(weights[0][name], other[name]) for other in weights[1:] for name in weights[0])
    initial = ddp_worker.initial_network(data).state_dict()
    assert max_difference(weights[0], initial) > 0.01
    # A run on one pod's rows alone (ranks 0 and 1) lands elsewhere: the other pod's gradients counted ...
    first_pod = rows[0] + rows[1]
    alone = weights_after_single_process_step(Part(data.x[first_pod], data.y[first_pod]))
    assert max_difference(weights[0], alone) > 0.01
    # ... and the step equals one step on all four shards together (the gradient averaged over 4 ranks).
    both = weights_after_single_process_step(Part(data.x[every], data.y[every]))
    assert max_difference(weights[0], both) < 1e-4


def test_topology_reads_torchruns_variables() -> None:
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1"}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    assert topology_from_env(env) == Topology(4, 3, 1, 2, 1)
    with pytest.raises(InvalidSpecError, match="LOCAL_RANK=2 does not fit LOCAL_WORLD_SIZE=2"):
        topology_from_env({**env, "LOCAL_RANK": "2"})


@pytest.mark.parametrize(("local_rank", "writes"), [(None, True), ("0", True), ("1", False)])
def test_only_local_rank_0_writes_the_pods_termination_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_rank: str | None, writes: bool
) -> None:
    if local_rank is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    log = tmp_path / "termination-log"
    assert cli.main(["--spec", str(tmp_path / "missing.yaml"), "--termination-log", str(log)]) == 1
    assert log.exists() is writes
