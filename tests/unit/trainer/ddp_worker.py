"""One DDP worker for the distributed tests: ``python -m tests.unit.trainer.ddp_worker OUT``.

Reads the environment the operator renders (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK,
LOCAL_RANK; or what torchrun gives each of a pod's processes), joins the process group like the
trainer, and takes one optimizer step of the trainer's own loop on its shard. Writes its weights,
the rows it trained on and its place (ranks) to OUT.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from kubeloop_trainer.distributed import join, leave
from kubeloop_trainer.features import build_features
from kubeloop_trainer.hyperparameters import network_hyperparameters
from kubeloop_trainer.model import Recipe
from kubeloop_trainer.networks import LayeredNetwork
from kubeloop_trainer.splits import Part, shard
from kubeloop_trainer.topology import Topology, topology_from_env
from kubeloop_trainer.torch_fit import FitHistory, LoopSettings, Phase, fit_network
from kubeloop_trainer.torch_models import new_network
from tests.unit.trainer.builders import blobs

SEED = 11
LEARNING_RATE = 0.05
HYPERPARAMETERS = {"hiddenUnits": [8], "batchSize": 1000, "epochs": 1}


def training_rows() -> Part:
    features = build_features(blobs(n_rows=64, n_features=4, n_classes=3, seed=5), "label", "classification")
    return Part(features.x, features.y)


def recipe() -> Recipe:
    return Recipe(
        algorithm="mlp",
        task="classification",
        n_features=4,
        n_classes=3,
        hyperparameters=HYPERPARAMETERS,
        seed=SEED,
    )


def initial_network(train: Part) -> LayeredNetwork:
    """The same starting weights on every rank (seeded) and in the single-process references."""
    return new_network(recipe(), network_hyperparameters(HYPERPARAMETERS), train)


def one_step(network: LayeredNetwork, train: Part, topology: Topology) -> FitHistory:
    """One epoch of the trainer's loop; the batch holds a whole shard, so it is one optimizer step."""
    settings = LoopSettings(task="classification", batch_size=1000, patience=0, seed=SEED)
    validation = Part(train.x[:8], train.y[:8])
    return fit_network(network, train, validation, [Phase(1, LEARNING_RATE)], settings, topology=topology)


def rows_of(rank: int, world_size: int, n_rows: int) -> list[int]:
    """The rows a rank trains on in epoch 1 (what fit_network's sharding picks)."""
    return [int(i) for i in shard(n_rows, rank, world_size, SEED, epoch=1)]


def main(out: Path) -> None:
    topology = topology_from_env()
    torch.set_num_threads(1)
    join(topology)
    try:
        train = training_rows()
        network = initial_network(train)
        one_step(network, train, topology)
        torch.save(network.state_dict(), out / f"rank-{topology.rank}.pt")
        rows = rows_of(topology.rank, topology.world_size, len(train))
        (out / f"rank-{topology.rank}.json").write_text(
            json.dumps(
                {
                    "rows": rows,
                    "world_size": topology.world_size,
                    "local_rank": topology.local_rank,
                    "local_world_size": topology.local_world_size,
                    "group_rank": topology.group_rank,
                }
            )
        )
    finally:
        leave()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
